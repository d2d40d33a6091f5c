"""Canonical JSON encoding and strict JSON decoding.

Spec: https://spec.matrix.org/latest/appendices/#canonical-json (and, for the
room-version-dependent strictness, https://spec.matrix.org/latest/rooms/v6/#canonical-json).

Everything that is hashed or signed in Matrix (event content hashes, reference hashes and
hence event IDs, server signatures, key responses) is computed over the *canonical* encoding
of a JSON value: the shortest UTF-8 encoding, object keys sorted by Unicode codepoint, no
insignificant whitespace, only integers in ``[-(2**53)+1, 2**53-1]``.  A single differing byte
means a different hash, so this module is deliberately strict and byte-for-byte compatible
with the reference implementation (the ``canonicaljson`` package used by Synapse).

The encoding itself is delegated to msgspec, whose escaping rules match the spec grammar
exactly: ``"`` and ``\\`` escaped, the control characters that have short forms as ``\\b``,
``\\t``, ``\\n``, ``\\f``, ``\\r``, every other C0 control character as lowercase ``\\u00XX``,
and everything else (including ``/``, DEL, U+2028 and U+2029) emitted verbatim as UTF-8.
Validation of numbers is done by a small iterative walk because msgspec would happily
encode floats (and even NaN, as ``null``).

Room versions 1-5 predate the enforcement of these rules; events in such rooms may carry
out-of-range integers or floats (see the "floaty power levels" note of room version 1).  To
verify hashes computed by other servers over such events, :func:`encode_canonical_json`
accepts ``strict=False``, which mirrors what the reference implementation does for those
values (floats are rendered the way Python's ``json`` module renders them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

import msgspec

__all__ = [
    "CANONICAL_INT_MAX",
    "CANONICAL_INT_MIN",
    "CanonicalJsonError",
    "check_canonical_json",
    "decode_canonical_json",
    "decode_json",
    "encode_canonical_json",
]

#: Largest integer allowed by the canonical JSON grammar (``2**53 - 1``).
CANONICAL_INT_MAX: Final = 2**53 - 1
#: Smallest integer allowed by the canonical JSON grammar (``-(2**53) + 1``).
CANONICAL_INT_MIN: Final = -(2**53) + 1


def _encode_other_mapping(obj: object) -> object:
    """msgspec hook: encode read-only Mappings (e.g. ``MappingProxyType``) as objects."""
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not a JSON type")


_ENCODER: Final = msgspec.json.Encoder(order="sorted", enc_hook=_encode_other_mapping)
_DECODER: Final = msgspec.json.Decoder()

# The reference implementation (Synapse's ``canonicaljson``) is stdlib ``json`` configured
# like this; it is only used for the legacy (non-strict) path when floats are present, so
# that float formatting matches byte for byte.
_LEGACY_ENCODER: Final = json.JSONEncoder(
    ensure_ascii=False,
    allow_nan=False,
    separators=(",", ":"),
    sort_keys=True,
    default=_encode_other_mapping,
)


class CanonicalJsonError(ValueError):
    """A value cannot be represented as (or was not valid) canonical JSON.

    ``path`` locates the offending value, e.g. ``content.users.@a:b``.
    """

    def __init__(self, reason: str, path: str = "") -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"{reason} at {path}" if path else reason)


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


class _Invalid(Exception):
    """Internal signal from the fast walk: re-walk slowly to build a precise error."""


def _fast_walk(value: object, strict: bool) -> bool:
    """Validate without tracking paths (the hot path); True if a float was seen.

    Raises :class:`_Invalid` on the first problem; :func:`_walk` then finds and reports it.
    """
    has_float = False
    stack: list[Any] = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is dict:
            for key in item:
                if type(key) is not str:
                    raise _Invalid
            extend(item.values())
        elif kind is int:
            if strict and not CANONICAL_INT_MIN <= item <= CANONICAL_INT_MAX:
                raise _Invalid
        elif kind is list or kind is tuple:
            extend(item)
        elif kind is float and not strict and math.isfinite(item):
            has_float = True
        else:
            raise _Invalid
    return has_float


def _walk(value: object, *, strict: bool) -> bool:
    """Validate ``value`` for canonical encoding; return True if it contains a float.

    In strict mode floats and out-of-range integers raise.  In both modes non-finite floats,
    non-string object keys and non-JSON types raise.  Iterative, so that deeply nested
    hostile input cannot exhaust the Python stack.  Plain dicts/lists take a fast path;
    other Mappings, and all errors, go through the path-tracking slow walk.
    """
    try:
        return _fast_walk(value, strict)
    except _Invalid:
        pass
    has_float = False
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if item is None or type(item) is str or type(item) is bool:
            continue
        if type(item) is int:
            if strict and not CANONICAL_INT_MIN <= item <= CANONICAL_INT_MAX:
                raise CanonicalJsonError("integer out of canonical JSON range", path)
            continue
        if type(item) is float:
            if strict:
                raise CanonicalJsonError("floats are not allowed in canonical JSON", path)
            if not math.isfinite(item):
                raise CanonicalJsonError("NaN and infinities are not JSON", path)
            has_float = True
            continue
        if isinstance(item, Mapping):
            for key, sub in item.items():
                if type(key) is not str:
                    raise CanonicalJsonError("object keys must be strings", _join(path, key))
                stack.append((sub, _join(path, key)))
            continue
        if isinstance(item, list | tuple):
            stack.extend((sub, _join(path, i)) for i, sub in enumerate(item))
            continue
        if isinstance(item, bool | str | int | float):
            # Subclasses (IntEnum, str-enums...): encoders disagree on them; refuse.
            raise CanonicalJsonError(f"unsupported subclass {type(item).__name__}", path)
        raise CanonicalJsonError(f"{type(item).__name__} is not a JSON type", path)
    return has_float


def check_canonical_json(value: object) -> None:
    """Raise :class:`CanonicalJsonError` unless ``value`` obeys the canonical JSON rules.

    This is the check room versions 6+ require on every event ("servers MUST strictly
    enforce the JSON format"): integers within range and no floats anywhere.
    """
    _walk(value, strict=True)


def encode_canonical_json(value: object, *, strict: bool = True) -> bytes:
    """Encode ``value`` as canonical JSON bytes.

    ``value`` may be built from dict/Mapping (string keys), list/tuple, str, int, bool and
    None.  With ``strict=True`` (the default, and what every room version from 6 on
    requires) floats and integers outside ``[-(2**53)+1, 2**53-1]`` raise
    :class:`CanonicalJsonError`.  ``strict=False`` exists only to re-hash legacy events from
    room versions 1-5 exactly as the server that created them did.

    Strings containing lone surrogates cannot be encoded as UTF-8 and raise
    :class:`CanonicalJsonError` as well.
    """
    has_float = _walk(value, strict=strict)
    try:
        if has_float:
            return _LEGACY_ENCODER.encode(value).encode("utf-8")
        return _ENCODER.encode(value)
    except (UnicodeEncodeError, TypeError, msgspec.EncodeError) as exc:
        raise CanonicalJsonError(f"cannot encode value: {exc}") from exc


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, val in pairs:
        if key in result:
            raise CanonicalJsonError("duplicate object key", key)
        result[key] = val
    return result


def decode_json(data: bytes | str) -> Any:
    """Decode JSON leniently (for room versions 1-5 and other non-canonical input).

    Rejects only what is not JSON at all (including ``NaN``/``Infinity`` literals and
    invalid UTF-8); floats and big integers are returned as-is.
    Raises :class:`CanonicalJsonError` on malformed input.
    """
    try:
        return _DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise CanonicalJsonError(f"invalid JSON: {exc}") from exc


def decode_canonical_json(data: bytes | str, *, reject_duplicate_keys: bool = True) -> Any:
    """Decode JSON, enforcing the value rules of canonical JSON (room versions 6+).

    Rejects floats (any number written with a fraction or exponent), integers outside the
    canonical range, ``NaN``/``Infinity``, invalid UTF-8 and lone surrogates.  It does *not*
    require the input text itself to be canonically formatted (whitespace and key order are
    free), since the spec only constrains the values of received JSON.

    Duplicate object keys are rejected by default: the spec does not name them, but a
    duplicated key means two parsers can see two different objects under one signature,
    and an object with duplicate keys has no canonical encoding.  Pass
    ``reject_duplicate_keys=False`` to accept them (last value wins, like most parsers).
    """
    value = decode_json(data)
    check_canonical_json(value)
    if reject_duplicate_keys:
        # msgspec silently keeps the last duplicate; a second, pair-preserving parse is
        # needed to see them.  The cheap pre-check skips it for the (usual) key-less case.
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        if ":" in text:
            json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    return value

"""Request bodies, converted strictly.

Litestar turns a handler's ``data: SomeStruct`` into the Struct with msgspec's lax
conversion (``strict=False``, see ``litestar/_signature/model.py``), the right thing for
query and path parameters, which arrive as strings, but wrong for JSON bodies: it takes
``"5"`` or ``5.0`` for an integer and ``"true"`` for a boolean, where the spec's types
are JSON types and a wrong one is ``400 M_BAD_JSON``. So handlers declare ``data: Any``
(Litestar still decodes the JSON, answering ``M_NOT_JSON`` when it cannot, and
``M_NOT_JSON`` for a missing body when ``data`` has no default) and convert it here:

    body = parse_body(data, CreateRoomBody)
    body = parse_body(data, ReasonBody, default=ReasonBody())  # body optional

https://spec.matrix.org/latest/client-server-api/#standard-error-response
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from dendrite_lite.errors import ErrCode, MatrixError

T = TypeVar("T")


def parse_body(data: Any, kind: type[T], *, default: T | None = None) -> T:
    """`data` (the decoded JSON body) as `kind`, with JSON's types taken strictly.

    No body (``None``) is `default` when one is given. Without one it is an error: a
    missing body never gets here (Litestar answers ``M_NOT_JSON`` for a required
    ``data``), so ``None`` is a body of ``null``: valid JSON, but not the object asked
    for, hence ``M_BAD_JSON`` as for any other value of the wrong type.
    """
    if data is None:
        if default is not None:
            return default
        raise MatrixError(400, ErrCode.BAD_JSON, "Expected a JSON object, got null")
    try:
        return msgspec.convert(data, kind, strict=True)
    except msgspec.ValidationError as exc:
        # "Expected `bool`, got `str` - at `$.is_direct`": name the field as the client
        # wrote it, without msgspec's JSON-path root.
        message = str(exc).replace("`$.", "`").replace("`$[", "`[")
        raise MatrixError(400, ErrCode.BAD_JSON, message) from None

"""Canonical JSON: byte-exact spec examples, and a randomised comparison with canonicaljson."""

from __future__ import annotations

import json
import random
from types import MappingProxyType
from typing import Any

import canonicaljson
import pytest

from dendrite_lite.events.canonical_json import (
    CANONICAL_INT_MAX,
    CANONICAL_INT_MIN,
    CanonicalJsonError,
    check_canonical_json,
    decode_canonical_json,
    decode_json,
    encode_canonical_json,
)

# (input JSON text, expected canonical output) from the appendix "Examples".
SPEC_EXAMPLES = [
    ("{}", "{}"),
    ('{\n    "one": 1,\n    "two": "Two"\n}', '{"one":1,"two":"Two"}'),
    ('{\n    "b": "2",\n    "a": "1"\n}', '{"a":"1","b":"2"}'),
    ('{"b":"2","a":"1"}', '{"a":"1","b":"2"}'),
    (
        """{
    "auth": {
        "success": true,
        "mxid": "@john.doe:example.com",
        "profile": {
            "display_name": "John Doe",
            "three_pids": [
                {"medium": "email", "address": "john.doe@example.org"},
                {"medium": "msisdn", "address": "123456789"}
            ]
        }
    }
}""",
        '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe",'
        '"three_pids":[{"address":"john.doe@example.org","medium":"email"},'
        '{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ),
    ('{\n    "a": "日本語"\n}', '{"a":"日本語"}'),
    ('{\n    "本": 2,\n    "日": 1\n}', '{"日":1,"本":2}'),
    ('{\n    "a": "\\u65E5"\n}', '{"a":"日"}'),
    ('{\n    "a": null\n}', '{"a":null}'),
]


@pytest.mark.parametrize(("source", "expected"), SPEC_EXAMPLES)
def test_spec_examples_byte_exact(source: str, expected: str) -> None:
    assert encode_canonical_json(decode_canonical_json(source)) == expected.encode("utf-8")


def test_spec_example_negative_zero_and_exponent() -> None:
    # Appendix: {"a": -0, "b": 1e10} -> {"a":0,"b":10000000000}.  Our API takes values, and
    # the value of 1e10 is the integer 10000000000 (a float is refused, see below).
    value = json.loads('{"a": -0, "b": 1e10}', parse_float=lambda s: int(float(s)))
    assert encode_canonical_json(value) == b'{"a":0,"b":10000000000}'


def test_escaping_matches_grammar() -> None:
    # Short escapes where the grammar has them, lowercase \u00XX for other C0 controls,
    # verbatim UTF-8 for everything else ("/", DEL, U+2028, U+2029, astral planes).
    text = "".join(chr(i) for i in range(0x20)) + '"\\/\x7f\u2028\u2029\U0001f600é'
    encoded = encode_canonical_json(text)
    assert encoded == (
        b'"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r'
        b"\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018"
        b'\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\"\\\\/\x7f'
        + "\u2028\u2029\U0001f600é".encode()
        + b'"'
    )
    assert encoded == canonicaljson.encode_canonical_json(text)


def test_keys_sorted_by_codepoint_not_utf16() -> None:
    # U+FFFF sorts before U+1F600 by codepoint (UTF-16 code-unit order would differ).
    value = {"\U0001f600": 1, "\uffff": 2, "a": 3, "é": 4}
    assert encode_canonical_json(value) == '{"a":3,"é":4,"\uffff":2,"\U0001f600":1}'.encode()


@pytest.mark.parametrize("bad", [1.5, 1.0, float("nan"), float("inf"), {"a": [0.5]}])
def test_floats_rejected(bad: object) -> None:
    with pytest.raises(CanonicalJsonError):
        encode_canonical_json(bad)


@pytest.mark.parametrize("value", [CANONICAL_INT_MAX, CANONICAL_INT_MIN, 0, -1])
def test_integer_range_edges_accepted(value: int) -> None:
    assert encode_canonical_json({"n": value}) == f'{{"n":{value}}}'.encode()


@pytest.mark.parametrize("value", [CANONICAL_INT_MAX + 1, CANONICAL_INT_MIN - 1, 2**64])
def test_integer_out_of_range_rejected(value: int) -> None:
    with pytest.raises(CanonicalJsonError, match=r"range at x\.0"):
        encode_canonical_json({"x": [value]})


def test_legacy_mode_allows_big_ints_and_floats_like_the_reference() -> None:
    value = {"big": 2**70, "f": 50.57, "e": 1e16, "n": [1.0]}
    assert encode_canonical_json(value, strict=False) == canonicaljson.encode_canonical_json(value)
    with pytest.raises(CanonicalJsonError):
        encode_canonical_json({"f": float("nan")}, strict=False)


@pytest.mark.parametrize(
    "bad",
    [
        {1: "int key"},
        {"set": {1, 2}},
        {"bytes": b"x"},
        "\ud800",  # lone surrogate: not UTF-8 encodable
    ],
)
def test_non_json_values_rejected(bad: object) -> None:
    with pytest.raises(CanonicalJsonError):
        encode_canonical_json(bad)


def test_subclasses_of_json_types_rejected() -> None:
    class MyStr(str):
        pass

    with pytest.raises(CanonicalJsonError, match="subclass"):
        encode_canonical_json({"a": MyStr("x")})


def test_other_mappings_encode_as_objects() -> None:
    value = {"b": MappingProxyType({"y": 1, "x": [2]}), "a": 1}
    assert encode_canonical_json(value) == b'{"a":1,"b":{"x":[2],"y":1}}'
    legacy = {"f": 1.5, "m": MappingProxyType({"k": 2})}
    assert encode_canonical_json(legacy, strict=False) == b'{"f":1.5,"m":{"k":2}}'


def test_tuples_encode_as_arrays() -> None:
    assert encode_canonical_json({"a": (1, "b")}) == b'{"a":[1,"b"]}'


def test_deep_nesting_does_not_recurse() -> None:
    value: Any = 1
    for _ in range(5000):
        value = [value]
    check_canonical_json(value)  # iterative walk: no RecursionError


def test_check_canonical_json_reports_path() -> None:
    with pytest.raises(CanonicalJsonError) as info:
        check_canonical_json({"content": {"users": {"@a:b": 50.5}}})
    assert info.value.path == "content.users.@a:b"


class TestDecoders:
    def test_strict_decoder_rejects_floats_and_exponents(self) -> None:
        for text in ('{"a": 1.0}', '{"a": 1e10}', '{"a": 1E2}', "[0.5]"):
            with pytest.raises(CanonicalJsonError):
                decode_canonical_json(text)

    def test_strict_decoder_rejects_out_of_range(self) -> None:
        with pytest.raises(CanonicalJsonError):
            decode_canonical_json(f'{{"a": {CANONICAL_INT_MAX + 1}}}')
        assert decode_canonical_json(f"[{CANONICAL_INT_MIN}]") == [CANONICAL_INT_MIN]

    @pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}', "{", '"\\ud800"'])
    def test_both_decoders_reject_non_json(self, text: str) -> None:
        with pytest.raises(CanonicalJsonError):
            decode_json(text)
        with pytest.raises(CanonicalJsonError):
            decode_canonical_json(text)

    def test_duplicate_keys(self) -> None:
        with pytest.raises(CanonicalJsonError, match="duplicate"):
            decode_canonical_json(b'{"a": {"b": 1, "b": 2}}')
        assert decode_canonical_json('{"a":1,"a":2}', reject_duplicate_keys=False) == {"a": 2}

    def test_lenient_decoder_keeps_floats_and_big_ints(self) -> None:
        assert decode_json(b'{"a": 1.5, "b": 123456789012345678901234567890}') == {
            "a": 1.5,
            "b": 123456789012345678901234567890,
        }

    def test_strict_decoder_accepts_non_canonical_formatting(self) -> None:
        assert decode_canonical_json(b' { "b" : [ 1 , true ] , "a" : null } ') == {
            "b": [1, True],
            "a": None,
        }
        assert decode_canonical_json(b"7") == 7


# --- randomised comparison against the reference implementation -------------------------

_ALPHABET = (
    [chr(c) for c in range(0x20)]
    + list("abcXYZ019 \"\\/'{}[]:,")
    + ["\x7f", "é", "日", "\u2028", "\u2029", "\ufeff", "\uffff", "\U0001f600", "\U0010ffff"]
)


def _random_string(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 12)))


def _random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randint(0, 7 if depth < 4 else 4)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice(
            [0, -1, 1, CANONICAL_INT_MAX, CANONICAL_INT_MIN, rng.randint(-(10**15), 10**15)]
        )
    if kind in (3, 4):
        return _random_string(rng)
    if kind == 5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    return {_random_string(rng): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 6))}


def test_randomised_against_canonicaljson_oracle() -> None:
    rng = random.Random(20240613)
    for _ in range(400):
        value = {_random_string(rng): _random_value(rng) for _ in range(rng.randint(0, 8))}
        expected = canonicaljson.encode_canonical_json(value)
        assert encode_canonical_json(value) == expected
        # and it round-trips through the strict decoder
        assert decode_canonical_json(expected) == value

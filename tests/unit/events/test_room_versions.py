"""Room version flags: each spec delta lands in exactly the version that introduced it."""

from __future__ import annotations

import msgspec
import pytest

from dendrite_lite.events.room_versions import (
    DEFAULT_ROOM_VERSION,
    KNOWN_ROOM_VERSIONS,
    EventFormat,
    RoomDisposition,
    RoomVersions,
    StateResAlgorithm,
    get_room_version,
)


def versions_with(flag: str) -> list[int]:
    return [int(k) for k, v in KNOWN_ROOM_VERSIONS.items() if getattr(v, flag)]


def test_known_versions_are_1_to_12_and_stable() -> None:
    assert list(KNOWN_ROOM_VERSIONS) == [str(n) for n in range(1, 13)]
    assert all(v.disposition is RoomDisposition.STABLE for v in KNOWN_ROOM_VERSIONS.values())
    assert RoomVersions.V7 is KNOWN_ROOM_VERSIONS["7"]


def test_default_is_v12() -> None:
    # rooms/_index.md: "Servers SHOULD use room version 12 as the default"
    assert DEFAULT_ROOM_VERSION.identifier == "12"


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("special_case_redaction_auth", [1, 2]),
        ("enforce_key_validity", list(range(5, 13))),
        ("special_case_aliases_auth", [1, 2, 3, 4, 5]),
        ("strict_canonicaljson", list(range(6, 13))),
        ("limit_notifications_power_levels", list(range(6, 13))),
        ("knock_join_rule", list(range(7, 13))),
        ("restricted_join_rule", list(range(8, 13))),
        ("restricted_join_rule_fix", list(range(9, 13))),
        ("knock_restricted_join_rule", [10, 11, 12]),
        ("enforce_int_power_levels", [10, 11, 12]),
        ("implicit_room_creator", [11, 12]),
        ("updated_redaction_rules", [11, 12]),
        ("strict_event_byte_limits", [11, 12]),
        ("room_id_is_create_event_id", [12]),
        ("privileged_creators", [12]),
        ("stringy_power_levels", list(range(1, 10))),
        ("floaty_power_levels", [1, 2, 3, 4, 5]),
        ("create_event_requires_creator", list(range(1, 11))),
    ],
)
def test_flag_introduced_in_the_right_version(flag: str, expected: list[int]) -> None:
    assert versions_with(flag) == expected


def test_event_format_and_state_res() -> None:
    formats = {k: v.event_format for k, v in KNOWN_ROOM_VERSIONS.items()}
    assert formats["1"] is formats["2"] is EventFormat.V1
    assert formats["3"] is EventFormat.V3
    assert all(formats[str(n)] is EventFormat.V4 for n in range(4, 13))
    algos = {k: v.state_res for k, v in KNOWN_ROOM_VERSIONS.items()}
    assert algos["1"] is StateResAlgorithm.V1
    assert all(algos[str(n)] is StateResAlgorithm.V2 for n in range(2, 12))
    assert algos["12"] is StateResAlgorithm.V2_1


def test_versions_are_frozen_and_lookup_errors_are_clear() -> None:
    with pytest.raises(AttributeError):
        RoomVersions.V1.knock_join_rule = True  # type: ignore[misc]
    assert get_room_version("9") is RoomVersions.V9
    with pytest.raises(KeyError, match="unknown room version '13'"):
        get_room_version("13")
    assert msgspec.json.decode(msgspec.json.encode(RoomVersions.V12), type=type(RoomVersions.V12))

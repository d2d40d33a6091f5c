"""Power levels: reading them (with every version's legacy encodings) and changing them.

Spec:
* defaults: https://spec.matrix.org/latest/client-server-api/#mroompower_levels and
  https://spec.matrix.org/latest/server-server-api/#definitions
* string values (v1-9): https://spec.matrix.org/latest/rooms/v9/#mroompower_levels-events-accept-values-as-strings
* float values (v1-5): https://spec.matrix.org/latest/rooms/v5/#mroompower_levels-events-accept-values-as-floats
* change rules: rule 10 of https://spec.matrix.org/latest/rooms/v12/#authorization-rules
  (rule 9 in v6-v11, rule 10 in v1-v5)
* infinite creator power: https://spec.matrix.org/latest/rooms/v12/#authorization-rules

Values are parsed lazily, field by field, exactly when a rule consults them: a room whose
power levels carry one unparseable legacy value must still let through events that never
look at that value.  A value that *is* consulted and cannot be parsed fails the event being
checked (:class:`AuthError`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Final

from dendrite_lite.events.auth_rules.common import (
    CREATE_KEY,
    POWER_LEVELS_KEY,
    AuthError,
    AuthState,
    creators,
)
from dendrite_lite.events.identifiers import is_valid_user_id
from dendrite_lite.events.pdu import Pdu
from dendrite_lite.events.room_versions import RoomVersion

__all__ = [
    "INFINITE_POWER_LEVEL",
    "check_power_levels_change",
    "named_level",
    "parse_power_level",
    "required_power_level",
    "user_power_level",
]

#: The power level of v12 room creators: above any integer a power levels event can hold.
INFINITE_POWER_LEVEL: Final = math.inf

#: Defaults "if unspecified" (and when there is no power levels event at all).
_NAMED_DEFAULTS: Final = {
    "ban": 50,
    "kick": 50,
    "redact": 50,
    "invite": 0,
    "events_default": 0,
    "state_default": 50,
    "users_default": 0,
}
_NAMED_FIELDS: Final = (
    "users_default",
    "events_default",
    "state_default",
    "ban",
    "redact",
    "kick",
    "invite",
)
# v1-9 stringy integers: optional surrounding whitespace, one optional sign, decimal digits
# (leading zeroes allowed).  ASCII digits only: Python's int() would also accept "1_000"
# and non-ASCII digits, which the spec does not.
_STRINGY_INT_RE: Final = re.compile(r"\s*[+-]?[0-9]+\s*")


def parse_power_level(value: object, room_version: RoomVersion, what: str) -> int:
    """Interpret one power level value under ``room_version``'s rules.

    Integers always; strings holding an integer in v1-9; finite floats, truncated towards
    zero, in v1-5.  Booleans are never power levels.  Raises :class:`AuthError`.
    """
    if type(value) is int:
        return value
    if isinstance(value, str) and room_version.stringy_power_levels:
        if _STRINGY_INT_RE.fullmatch(value):
            return int(value.strip())
    elif isinstance(value, float) and room_version.floaty_power_levels and math.isfinite(value):
        return int(value)
    raise AuthError(f"invalid power level {value!r} for {what}")


def _power_levels_content(state: AuthState) -> Mapping[str, object] | None:
    event = state.get(POWER_LEVELS_KEY)
    return event.content if event is not None else None


def _sub_mapping(content: Mapping[str, object], name: str) -> Mapping[str, object]:
    value = content.get(name, {})
    if not isinstance(value, Mapping):
        raise AuthError(f"power levels {name} is not an object")
    return value


def named_level(state: AuthState, name: str, room_version: RoomVersion) -> int:
    """``ban``, ``kick``, ``redact``, ``invite``, ``*_default`` with the spec's defaults."""
    content = _power_levels_content(state)
    if content is None or name not in content:
        return _NAMED_DEFAULTS[name]
    return parse_power_level(content[name], room_version, name)


def user_power_level(state: AuthState, user_id: str, room_version: RoomVersion) -> float:
    """A user's power level (an int, or :data:`INFINITE_POWER_LEVEL` for v12 creators).

    With a power levels event: ``users[user_id]``, else ``users_default`` (0).  Without
    one: 100 for the room creator and 0 for everyone else (v1-11).  In v12 the creators
    (create sender and ``additional_creators``) are infinitely powerful regardless.
    """
    create = state.get(CREATE_KEY)
    if (
        room_version.privileged_creators
        and create is not None
        and user_id in creators(create, room_version)
    ):
        return INFINITE_POWER_LEVEL
    content = _power_levels_content(state)
    if content is None:
        if create is not None and user_id in creators(create, room_version):
            return 100
        return 0
    users = _sub_mapping(content, "users")
    if user_id in users:
        return parse_power_level(users[user_id], room_version, f"users.{user_id}")
    return named_level(state, "users_default", room_version)


def required_power_level(state: AuthState, event: Pdu, room_version: RoomVersion) -> int:
    """The "required power level" to send ``event``: ``events[type]``, else the state or
    event default."""
    content = _power_levels_content(state)
    if content is not None:
        events = _sub_mapping(content, "events")
        if event.type in events:
            return parse_power_level(events[event.type], room_version, f"events.{event.type}")
    return named_level(state, "state_default" if event.is_state else "events_default", room_version)


def _check_v10_integer_shape(content: Mapping[str, object]) -> None:
    """v10+ rules 10.1 and 10.2: no stringy (or otherwise non-integer) values at all."""
    for name in _NAMED_FIELDS:
        if name in content and type(content[name]) is not int:
            raise AuthError(f"power levels {name} must be an integer")
    for name in ("events", "notifications"):
        if name in content:
            value = content[name]
            if not isinstance(value, Mapping) or any(type(v) is not int for v in value.values()):
                raise AuthError(f"power levels {name} must be an object of integers")


def _check_users_shape(content: Mapping[str, object], room_version: RoomVersion) -> None:
    """Rule 10.3: ``users`` maps valid user IDs to (version-appropriate) integers."""
    users = content.get("users", {})
    if not isinstance(users, Mapping):
        raise AuthError("power levels users must be an object")
    for user_id, level in users.items():
        if not isinstance(user_id, str) or not is_valid_user_id(user_id):
            raise AuthError(f"power levels users has invalid user ID {user_id!r}")
        parse_power_level(level, room_version, f"users.{user_id}")


def _check_alterations(
    old: Mapping[str, object],
    new: Mapping[str, object],
    keys: Iterable[str],
    sender_level: float,
    room_version: RoomVersion,
    what: str,
    *,
    sender: str | None = None,
) -> None:
    """Compare ``old`` and ``new`` values under ``keys`` against the sender's level.

    For every key added, changed or removed: the current value must not exceed the sender's
    level, and neither may the new value.  For ``users`` (``sender`` given) the current
    value of entries other than the sender's own must be strictly *below* the sender's
    level, and the sender's own current entry is not compared.
    """
    for key in keys:
        old_level = (
            parse_power_level(old[key], room_version, f"{what}{key}") if key in old else None
        )
        new_level = (
            parse_power_level(new[key], room_version, f"{what}{key}") if key in new else None
        )
        if old_level is not None and new_level is not None and old_level == new_level:
            continue
        if old_level is not None:
            if sender is None:
                if old_level > sender_level:
                    raise AuthError(f"cannot change {what}{key}: above sender's level")
            elif key != sender and old_level >= sender_level:
                raise AuthError(f"cannot change {what}{key}: not below sender's level")
        if new_level is not None and new_level > sender_level:
            raise AuthError(f"cannot set {what}{key} above sender's level")


def check_power_levels_change(event: Pdu, state: AuthState, room_version: RoomVersion) -> None:
    """Rule 10 (v12 numbering): may ``event`` (an ``m.room.power_levels``) replace the
    current power levels?  Raises :class:`AuthError`."""
    content = event.content
    if room_version.enforce_int_power_levels:
        _check_v10_integer_shape(content)
    _check_users_shape(content, room_version)
    if room_version.privileged_creators:
        create = state.get(CREATE_KEY)
        users = _sub_mapping(content, "users")
        if create is not None and any(c in users for c in creators(create, room_version)):
            raise AuthError("room creators cannot be given a power level")
    current = state.get(POWER_LEVELS_KEY)
    if current is None:
        return
    old = current.content
    sender_level = user_power_level(state, event.sender, room_version)
    _check_alterations(old, content, _NAMED_FIELDS, sender_level, room_version, "")
    sub_objects = ["events"]
    if room_version.limit_notifications_power_levels:
        sub_objects.append("notifications")
    for name in sub_objects:
        old_sub, new_sub = _sub_mapping(old, name), _sub_mapping(content, name)
        keys = set(old_sub) | set(new_sub)
        _check_alterations(old_sub, new_sub, keys, sender_level, room_version, f"{name}.")
    old_users, new_users = _sub_mapping(old, "users"), _sub_mapping(content, "users")
    keys = set(old_users) | set(new_users)
    _check_alterations(
        old_users, new_users, keys, sender_level, room_version, "users.", sender=event.sender
    )

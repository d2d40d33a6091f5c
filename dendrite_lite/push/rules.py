"""Push rules: the model, the checks on what clients send, and the JSON shapes.

https://spec.matrix.org/latest/client-server-api/#push-rules
https://spec.matrix.org/latest/client-server-api/#push-rules-api

Errors: a bad path (unknown kind, a rule ID the kind does not allow) is
`400 M_INVALID_PARAM`; a bad body (actions, conditions, pattern) is `400 M_BAD_JSON`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from dendrite_lite.errors import ErrCode, MatrixError, bad_json, invalid_param

# In the order they are checked.
KINDS = ("override", "content", "room", "sender", "underride")
CONDITION_KINDS = ("override", "underride")

# "Older versions of the specification included the dont_notify and coalesce actions.
# Clients and homeservers MUST ignore these actions, for instance, by stripping them."
HISTORICAL_ACTIONS = frozenset({"dont_notify", "coalesce"})

MAX_RULE_ID_BYTES = 255
MAX_ACTIONS = 32
MAX_CONDITIONS = 32
MAX_PATTERN_CHARS = 1024
MAX_KEY_CHARS = 512
# A user's own rules (all kinds together). They are evaluated for every event in the
# user's rooms, on the writer thread, so their number is bounded.
MAX_USER_RULES = 500

_MEMBER_COUNT = re.compile(r"(==|<=|>=|<|>)?([0-9]{1,9})")
_MAX_SAFE_INT = 2**53 - 1


@dataclass(frozen=True)
class Rule:
    kind: str
    rule_id: str
    actions: list[Any]
    enabled: bool = True
    default: bool = False
    conditions: list[dict[str, Any]] | None = None  # override and underride
    pattern: str | None = None  # content

    def to_json(self) -> dict[str, Any]:
        rule: dict[str, Any] = {
            "rule_id": self.rule_id,
            "default": self.default,
            "enabled": self.enabled,
            "actions": self.actions,
        }
        if self.kind in CONDITION_KINDS:
            rule["conditions"] = self.conditions or []
        elif self.kind == "content":
            rule["pattern"] = self.pattern or ""
        return rule

    def changed(self, *, enabled: bool | None = None, actions: list[Any] | None = None) -> Rule:
        return replace(
            self,
            enabled=self.enabled if enabled is None else enabled,
            actions=self.actions if actions is None else actions,
        )


# -- path checks -----------------------------------------------------------------------


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise invalid_param(f"Unknown push rule kind {kind!r}: expected one of {', '.join(KINDS)}")


def check_new_rule_id(kind: str, rule_id: str) -> None:
    """A rule ID a user may create (PUT of a new or user-defined rule)."""
    if not rule_id:
        raise invalid_param("The rule ID must not be empty")
    if rule_id.startswith("."):
        raise invalid_param("Rule IDs starting with '.' are reserved for server-default rules")
    if "/" in rule_id or "\\" in rule_id:
        raise invalid_param("Rule IDs may not contain slashes or backslashes")
    if len(rule_id.encode()) > MAX_RULE_ID_BYTES:
        raise invalid_param("The rule ID is too long")
    # "The rule_id of a room rule is always the ID of the room that it affects"; of a
    # sender rule, the user's Matrix ID.
    if kind == "room" and not rule_id.startswith("!"):
        raise invalid_param("The rule ID of a room rule must be a room ID")
    if kind == "sender" and not (rule_id.startswith("@") and ":" in rule_id):
        raise invalid_param("The rule ID of a sender rule must be a user ID")


# -- body checks -----------------------------------------------------------------------


def parse_actions(value: Any) -> list[Any]:
    """A rule's actions, with the historical ones stripped. Raises 400 M_BAD_JSON."""
    if not isinstance(value, list):
        raise bad_json("actions must be an array")
    if len(value) > MAX_ACTIONS:
        raise bad_json(f"At most {MAX_ACTIONS} actions")
    actions: list[Any] = []
    for action in value:
        if isinstance(action, str):
            if action in HISTORICAL_ACTIONS:
                continue
            if action != "notify":
                raise bad_json(f"Unknown action {action!r}")
            actions.append(action)
        elif isinstance(action, dict):
            tweak = action.get("set_tweak")
            if not isinstance(tweak, str) or not tweak:
                raise bad_json("An action object must be a set_tweak with a tweak name")
            if tweak == "highlight" and "value" in action and not isinstance(action["value"], bool):
                raise bad_json("The highlight tweak's value must be a boolean")
            actions.append(action)
        else:
            raise bad_json("An action must be a string or an object")
    return actions


def _key(condition: dict[str, Any]) -> str:
    key = condition.get("key")
    if not isinstance(key, str) or not key:
        raise bad_json(f"A {condition['kind']} condition needs a string key")
    if len(key) > MAX_KEY_CHARS:
        raise bad_json("The condition's key is too long")
    return key


def _pattern(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise bad_json(f"{what} needs a string pattern")
    if len(value) > MAX_PATTERN_CHARS:
        raise bad_json(f"The pattern is too long (at most {MAX_PATTERN_CHARS} characters)")
    return value


def _scalar(value: Any) -> bool:
    """A non-compound canonical JSON value: string, safe integer, boolean or null."""
    if value is None or isinstance(value, str | bool):
        return True
    return type(value) is int and -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT


def parse_condition(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_json("A condition must be an object")
    kind = value.get("kind")
    if not isinstance(kind, str) or not kind:
        raise bad_json("A condition needs a string kind")
    if kind == "event_match":
        return {
            "kind": kind,
            "key": _key(value),
            "pattern": _pattern(value.get("pattern"), "event_match"),
        }
    if kind in ("event_property_is", "event_property_contains"):
        if "value" not in value or not _scalar(value["value"]):
            raise bad_json(
                f"{kind} needs a value: a string, an integer within ±(2**53-1), a boolean or null"
            )
        return {"kind": kind, "key": _key(value), "value": value["value"]}
    if kind == "contains_display_name":
        return {"kind": kind}
    if kind == "room_member_count":
        is_ = value.get("is")
        if not isinstance(is_, str) or _MEMBER_COUNT.fullmatch(is_) is None:
            raise bad_json(
                "room_member_count needs 'is': a number, optionally after ==, <, >, <= or >="
            )
        return {"kind": kind, "is": is_}
    if kind == "sender_notification_permission":
        return {"kind": kind, "key": _key(value)}
    # "Unrecognised conditions MUST NOT match any events": kept as sent, never matching.
    return value


def parse_conditions(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise bad_json("conditions must be an array")
    if len(value) > MAX_CONDITIONS:
        raise bad_json(f"At most {MAX_CONDITIONS} conditions")
    return [parse_condition(c) for c in value]


def parse_new_rule(kind: str, rule_id: str, body: Any) -> Rule:
    """The rule a PUT /pushrules/global/{kind}/{ruleId} body describes."""
    if not isinstance(body, dict):
        raise bad_json("Expected a JSON object")
    if "actions" not in body:
        raise MatrixError(400, ErrCode.BAD_JSON, "Missing 'actions'")
    actions = parse_actions(body["actions"])
    if kind in CONDITION_KINDS:
        # A rule with no conditions always matches.
        conditions = parse_conditions(body.get("conditions", []))
        return Rule(kind, rule_id, actions, conditions=conditions)
    if kind == "content":
        if "pattern" not in body:
            raise bad_json("A content rule needs a pattern")
        return Rule(kind, rule_id, actions, pattern=_pattern(body["pattern"], "A content rule"))
    return Rule(kind, rule_id, actions)


def compare(count: int, spec: str) -> bool:
    """room_member_count: `spec` is `[op]N` (already checked), `op` defaulting to ==."""
    found = _MEMBER_COUNT.fullmatch(spec)
    if found is None:
        return False
    op, number = found.group(1) or "==", int(found.group(2))
    if op == "==":
        return count == number
    if op == "<":
        return count < number
    if op == ">":
        return count > number
    if op == "<=":
        return count <= number
    return count >= number

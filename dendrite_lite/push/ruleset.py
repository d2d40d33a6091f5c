"""A user's whole ruleset: the server-default rules (with the user's changes to their
`enabled` and `actions`) and the user's own rules, in the order they are checked.

"Server-default rules ... operate at a lower priority than user-defined rules, except
for the .m.rule.master rule which has always a higher priority than any other rule."
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from dendrite_lite.push.defaults import MASTER, USER, default_rules
from dendrite_lite.push.rules import KINDS, Rule


@dataclass
class UserRules:
    """What is stored for one user: their own rules by kind (most important first) and
    their changes to server-default rules: (kind, rule_id) -> (enabled, actions), None
    where unchanged."""

    own: dict[str, list[Rule]] = field(default_factory=dict)
    default_changes: dict[tuple[str, str], tuple[bool | None, list[Any] | None]] = field(
        default_factory=dict
    )

    @property
    def empty(self) -> bool:
        return not self.default_changes and not any(self.own.values())


def assemble(stored: UserRules) -> dict[str, list[Rule]]:
    """The ruleset by kind, each list in priority order (placeholders for the user)."""
    defaults = default_rules()
    result: dict[str, list[Rule]] = {}
    for kind in KINDS:
        base = []
        for rule in defaults[kind]:
            enabled, actions = stored.default_changes.get((kind, rule.rule_id), (None, None))
            base.append(rule.changed(enabled=enabled, actions=actions))
        own = stored.own.get(kind, [])
        if kind == "override" and base and base[0].rule_id == MASTER:
            result[kind] = [base[0], *own, *base[1:]]
        else:
            result[kind] = [*own, *base]
    return result


def _substitute(value: Any, user_id: str) -> Any:
    if value == USER:
        return user_id
    return value


def rule_json(rule: Rule, user_id: str) -> dict[str, Any]:
    """A rule as clients see it, with the user's ID in the default rules that name it."""
    shown = rule.to_json()
    if rule.default and rule.conditions:
        shown["conditions"] = [
            {k: _substitute(v, user_id) for k, v in condition.items()}
            for condition in rule.conditions
        ]
    return shown


def ruleset_json(ruleset: dict[str, list[Rule]], user_id: str) -> dict[str, Any]:
    return {kind: [rule_json(rule, user_id) for rule in ruleset[kind]] for kind in KINDS}


def account_data_content(ruleset: dict[str, list[Rule]], user_id: str) -> bytes:
    """The content of the user's m.push_rules account data event."""
    return msgspec.json.encode({"global": ruleset_json(ruleset, user_id)})


def default_account_data(user_id: str) -> bytes:
    """m.push_rules for a user who never changed a rule."""
    return account_data_content(assemble(UserRules()), user_id)

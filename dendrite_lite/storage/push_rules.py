"""Users' push rules: their own rules, and their changes to the server-default ones.

A user's own rules of one kind are ordered by `priority`, highest first. The server's
default rules are not stored; `push_rule_defaults` only holds a user's `enabled` or
`actions` for one of them (NULL: as defined).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import apsw
import msgspec

from dendrite_lite.push.rules import Rule
from dendrite_lite.push.ruleset import UserRules

_RULE_COLUMNS = "user_id, kind, rule_id, conditions, pattern, actions, enabled"


def _rule(row: tuple[Any, ...]) -> Rule:
    _user, kind, rule_id, conditions, pattern, actions, enabled = row
    return Rule(
        kind=str(kind),
        rule_id=str(rule_id),
        actions=msgspec.json.decode(actions),
        enabled=bool(enabled),
        conditions=None if conditions is None else msgspec.json.decode(conditions),
        pattern=None if pattern is None else str(pattern),
    )


def own_rules(conn: apsw.Connection, user_id: str, kind: str) -> list[Rule]:
    """The user's own rules of `kind`, most important first."""
    return [
        _rule(row)
        for row in conn.execute(
            f"SELECT {_RULE_COLUMNS} FROM push_rules WHERE user_id = ? AND kind = ?"
            " ORDER BY priority DESC",
            (user_id, kind),
        )
    ]


def count_rules(conn: apsw.Connection, user_id: str) -> int:
    for (count,) in conn.execute("SELECT count(*) FROM push_rules WHERE user_id = ?", (user_id,)):
        return int(count)
    return 0


def upsert_rule(conn: apsw.Connection, user_id: str, rule: Rule, priority: int) -> None:
    conn.execute(
        "INSERT INTO push_rules"
        " (user_id, kind, rule_id, priority, conditions, pattern, actions, enabled)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, kind, rule_id) DO UPDATE SET"
        " priority = excluded.priority, conditions = excluded.conditions,"
        " pattern = excluded.pattern, actions = excluded.actions, enabled = excluded.enabled",
        (
            user_id,
            rule.kind,
            rule.rule_id,
            priority,
            None if rule.conditions is None else msgspec.json.encode(rule.conditions),
            rule.pattern,
            msgspec.json.encode(rule.actions),
            int(rule.enabled),
        ),
    )


def set_order(conn: apsw.Connection, user_id: str, kind: str, rule_ids: list[str]) -> None:
    """Renumber the user's rules of `kind` so that `rule_ids` (most important first) is
    their order."""
    count = len(rule_ids)
    conn.executemany(
        "UPDATE push_rules SET priority = ? WHERE user_id = ? AND kind = ? AND rule_id = ?",
        [(count - index, user_id, kind, rule_id) for index, rule_id in enumerate(rule_ids)],
    )


def delete_rule(conn: apsw.Connection, user_id: str, kind: str, rule_id: str) -> bool:
    conn.execute(
        "DELETE FROM push_rules WHERE user_id = ? AND kind = ? AND rule_id = ?",
        (user_id, kind, rule_id),
    )
    return conn.changes() > 0


def set_own(
    conn: apsw.Connection,
    user_id: str,
    kind: str,
    rule_id: str,
    *,
    enabled: bool | None = None,
    actions: list[Any] | None = None,
) -> bool:
    """Change `enabled` or `actions` of one of the user's own rules; False if none."""
    if enabled is not None:
        conn.execute(
            "UPDATE push_rules SET enabled = ? WHERE user_id = ? AND kind = ? AND rule_id = ?",
            (int(enabled), user_id, kind, rule_id),
        )
    else:
        conn.execute(
            "UPDATE push_rules SET actions = ? WHERE user_id = ? AND kind = ? AND rule_id = ?",
            (msgspec.json.encode(actions), user_id, kind, rule_id),
        )
    return conn.changes() > 0


def set_default(
    conn: apsw.Connection,
    user_id: str,
    kind: str,
    rule_id: str,
    *,
    enabled: bool | None = None,
    actions: list[Any] | None = None,
) -> None:
    """Record the user's `enabled` or `actions` for a server-default rule."""
    if enabled is not None:
        conn.execute(
            "INSERT INTO push_rule_defaults (user_id, kind, rule_id, enabled) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user_id, kind, rule_id) DO UPDATE SET enabled = excluded.enabled",
            (user_id, kind, rule_id, int(enabled)),
        )
    else:
        conn.execute(
            "INSERT INTO push_rule_defaults (user_id, kind, rule_id, actions) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user_id, kind, rule_id) DO UPDATE SET actions = excluded.actions",
            (user_id, kind, rule_id, msgspec.json.encode(actions)),
        )


def load_many(conn: apsw.Connection, user_ids: Iterable[str]) -> dict[str, UserRules]:
    """Everything stored for the given users, in two queries; users with nothing stored
    are left out."""
    wanted = msgspec.json.encode(list(user_ids))
    found: dict[str, UserRules] = {}
    for row in conn.execute(
        f"SELECT {_RULE_COLUMNS} FROM push_rules"
        " WHERE user_id IN (SELECT value FROM json_each(?)) ORDER BY user_id, kind, priority DESC",
        (wanted,),
    ):
        rules = found.setdefault(str(row[0]), UserRules())
        rule = _rule(row)
        rules.own.setdefault(rule.kind, []).append(rule)
    for user_id, kind, rule_id, enabled, actions in conn.execute(
        "SELECT user_id, kind, rule_id, enabled, actions FROM push_rule_defaults"
        " WHERE user_id IN (SELECT value FROM json_each(?))",
        (wanted,),
    ):
        rules = found.setdefault(str(user_id), UserRules())
        rules.default_changes[(str(kind), str(rule_id))] = (
            None if enabled is None else bool(enabled),
            None if actions is None else msgspec.json.decode(actions),
        )
    return found


def load(conn: apsw.Connection, user_id: str) -> UserRules:
    return load_many(conn, [user_id]).get(user_id, UserRules())

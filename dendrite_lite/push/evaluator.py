"""Push rule evaluation: rules compiled once per user, evaluated per event and recipient.

https://spec.matrix.org/latest/client-server-api/#conditions-1

A `CompiledRuleset` is a user's enabled rules in the order they are checked, each with
its conditions compiled (globs, dotted paths) and its outcome (notify, highlight, the
tweaks) worked out. Everyone who never changed a rule shares one compiled default set:
its conditions naming "the user" are relative to the recipient.

An `EventView` is one event as the conditions see it, built once per event: property
lookups and the results of conditions that do not depend on the recipient are
memoised, so evaluating for the 200th member of a room is mostly dictionary lookups.

`RuleCache` holds the compiled rulesets by user, loading the missing ones for an event's
recipients in one query; a user's change to their rules invalidates their entry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import apsw
import msgspec

from dendrite_lite.property_paths import split_path
from dendrite_lite.push.defaults import USER
from dendrite_lite.push.glob import Glob
from dendrite_lite.push.rules import KINDS, Rule, compare
from dendrite_lite.push.ruleset import UserRules, assemble

MISSING: Any = object()
BODY = ("content", "body")


def _same(a: object, b: object) -> bool:
    """Exact JSON equality of scalars: no casts (true is not 1, "1" is not 1)."""
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class Power:
    """What sender_notification_permission needs: the sender's level and the room's
    `notifications` levels."""

    sender_level: float
    notifications: Mapping[str, int]

    def required(self, key: str) -> int:
        # The spec's default for `room` is 50, as it is for any key it may add.
        return self.notifications.get(key, 50)


class EventView:
    """One event as push rule conditions see it."""

    __slots__ = ("_power", "_power_loader", "_values", "event", "member_count", "memo")

    def __init__(
        self, event: dict[str, Any], member_count: int, power_loader: Callable[[], Power]
    ) -> None:
        self.event = event
        self.member_count = member_count
        self._power_loader = power_loader
        self._power: Power | None = None
        self._values: dict[tuple[str, ...], Any] = {}
        # Results of conditions that do not depend on the recipient, by condition key.
        self.memo: dict[tuple[Any, ...], bool] = {}

    def value(self, path: tuple[str, ...]) -> Any:
        """The property at `path`, or MISSING."""
        found = self._values.get(path, None)
        if found is None and path not in self._values:
            node: Any = self.event
            for part in path:
                if not isinstance(node, dict) or part not in node:
                    node = MISSING
                    break
                node = node[part]
            self._values[path] = found = node
        return found

    @property
    def power(self) -> Power:
        if self._power is None:
            self._power = self._power_loader()
        return self._power

    def mentioned_user_ids(self) -> set[str]:
        """content.m.mentions.user_ids, as strings."""
        ids = self.value(("content", "m.mentions", "user_ids"))
        return {u for u in ids if isinstance(u, str)} if isinstance(ids, list) else set()


# -- conditions ------------------------------------------------------------------------


class Condition:
    """`key`: the memo key when the result does not depend on the recipient, else None."""

    __slots__ = ("key",)

    def __init__(self, key: tuple[Any, ...] | None) -> None:
        self.key = key

    def test(self, event: EventView, user_id: str, display_name: str | None) -> bool:
        raise NotImplementedError


class EventMatch(Condition):
    __slots__ = ("glob", "path", "words")

    def __init__(self, path: tuple[str, ...], pattern: str) -> None:
        super().__init__(("event_match", path, pattern))
        self.path = path
        self.glob = Glob(pattern)
        self.words = path == BODY

    def test(self, event: EventView, user_id: str, display_name: str | None) -> bool:
        value = event.value(self.path)
        if not isinstance(value, str):
            return False
        return self.glob.matches_words(value) if self.words else self.glob.matches(value)


class EventMatchesUser(Condition):
    """event_match whose pattern is the recipient's Matrix ID (.m.rule.invite_for_me)."""

    __slots__ = ("path",)

    def __init__(self, path: tuple[str, ...]) -> None:
        super().__init__(None)
        self.path = path

    def test(self, event: EventView, user_id: str, display_name: str | None) -> bool:
        value = event.value(self.path)
        # A user ID holds no glob characters: the glob is the ID itself, case-insensitive.
        return isinstance(value, str) and value.lower() == user_id.lower()


class PropertyIs(Condition):
    __slots__ = ("path", "value")

    def __init__(self, path: tuple[str, ...], value: Any) -> None:
        super().__init__(("event_property_is", path, type(value).__name__, value))
        self.path = path
        self.value = value

    def test(self, event: EventView, user_id: str, display_name: str | None) -> bool:
        return _same(event.value(self.path), self.value)


class PropertyContains(Condition):
    __slots__ = ("path", "value")

    def __init__(self, path: tuple[str, ...], value: Any) -> None:
        super().__init__(("event_property_contains", path, type(value).__name__, value))
        self.path = path
        self.value = value

    def test(self, event: EventView, user_id: str, display_name: str | None) -> bool:
        array = event.value(self.path)
        return isinstance(array, list) and any(_same(item, self.value) for item in array)


class PropertyContainsUser(Condition):
    """event_property_contains of the recipient's Matrix ID (.m.rule.is_user_mention)."""

    __slots__ = ("path",)

    def __init__(self, path: tuple[str, ...]) -> None:
        super().__init__(None)
        self.path = path

    def test(self, event: EventView, user_id: str, display_name: str | None) -> bool:
        array = event.value(self.path)
        return isinstance(array, list) and user_id in array


class ContainsDisplayName(Condition):
    """The recipient's display name in the room, as a whole word (or words) of the body."""

    __slots__ = ()

    _globs: dict[str, Glob] = {}
    _lock = threading.Lock()

    def __init__(self) -> None:
        super().__init__(None)

    @classmethod
    def _glob(cls, name: str) -> Glob:
        glob = cls._globs.get(name)
        if glob is None:
            # The name is literal text: a '?' in it is a question mark, not a wildcard.
            glob = Glob(name, literal=True)
            with cls._lock:
                if len(cls._globs) > 10_000:
                    cls._globs.clear()
                cls._globs[name] = glob
        return glob

    def test(self, event: EventView, user_id: str, display_name: str | None) -> bool:
        if not display_name:
            return False
        body = event.value(BODY)
        if not isinstance(body, str):
            return False
        key = ("contains_display_name", display_name)
        found = event.memo.get(key)
        if found is None:
            found = event.memo[key] = self._glob(display_name).matches_words(body)
        return found


class RoomMemberCount(Condition):
    __slots__ = ("spec",)

    def __init__(self, spec: str) -> None:
        super().__init__(("room_member_count", spec))
        self.spec = spec

    def test(self, event: EventView, user_id: str, display_name: str | None) -> bool:
        return compare(event.member_count, self.spec)


class SenderNotificationPermission(Condition):
    __slots__ = ("level_key",)

    def __init__(self, level_key: str) -> None:
        super().__init__(("sender_notification_permission", level_key))
        self.level_key = level_key

    def test(self, event: EventView, user_id: str, display_name: str | None) -> bool:
        power = event.power
        return power.sender_level >= power.required(self.level_key)


class Never(Condition):
    """An unrecognised (or malformed) condition: it "MUST NOT match any events"."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(("never",))

    def test(self, event: EventView, user_id: str, display_name: str | None) -> bool:
        return False


class Equals(Condition):
    """A room or sender rule: the event's room_id or sender is the rule ID."""

    __slots__ = ("field", "value")

    def __init__(self, field: str, value: str) -> None:
        super().__init__(("equals", field, value))
        self.field = field
        self.value = value

    def test(self, event: EventView, user_id: str, display_name: str | None) -> bool:
        return _same(event.value((self.field,)), self.value)


def compile_condition(condition: dict[str, Any]) -> Condition:
    kind = condition.get("kind")
    key = condition.get("key")
    path = split_path(key) if isinstance(key, str) else None
    if kind == "event_match" and path is not None:
        pattern = condition.get("pattern")
        if pattern == USER:
            return EventMatchesUser(path)
        if isinstance(pattern, str):
            return EventMatch(path, pattern)
    elif kind == "event_property_is" and path is not None and "value" in condition:
        return PropertyIs(path, condition["value"])
    elif kind == "event_property_contains" and path is not None and "value" in condition:
        if condition["value"] == USER:
            return PropertyContainsUser(path)
        return PropertyContains(path, condition["value"])
    elif kind == "contains_display_name":
        return ContainsDisplayName()
    elif kind == "room_member_count" and isinstance(condition.get("is"), str):
        return RoomMemberCount(condition["is"])
    elif kind == "sender_notification_permission" and isinstance(key, str):
        return SenderNotificationPermission(key)
    return Never()


# -- outcomes and rulesets ----------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a matching rule's actions mean for one event and recipient."""

    notify: bool
    highlight: bool
    tweaks: dict[str, Any]
    actions: bytes  # the actions as JSON, for /notifications

    @classmethod
    def of(cls, actions: list[Any]) -> Outcome:
        tweaks: dict[str, Any] = {}
        for action in actions:
            if isinstance(action, dict) and isinstance(action.get("set_tweak"), str):
                # "If a highlight tweak is given with no value, its value is defined to be
                # true"; other tweaks without a value are passed on as true too.
                tweaks[action["set_tweak"]] = action.get("value", True)
        return cls(
            notify="notify" in actions,
            highlight=tweaks.get("highlight") is True,
            tweaks=tweaks,
            actions=msgspec.json.encode(actions),
        )


@dataclass(frozen=True)
class CompiledRule:
    rule_id: str
    conditions: tuple[Condition, ...]
    outcome: Outcome


@dataclass(frozen=True)
class CompiledRuleset:
    rules: tuple[CompiledRule, ...]
    # Whether any enabled rule depends on the recipient beyond naming their Matrix ID
    # (their display name, or rules of their own).
    personal: bool


def _conditions_of(rule: Rule) -> list[dict[str, Any]]:
    if rule.kind == "content":
        return [{"kind": "event_match", "key": "content.body", "pattern": rule.pattern or ""}]
    if rule.kind == "room":
        return []
    if rule.kind == "sender":
        return []
    return rule.conditions or []


def compile_ruleset(ruleset: dict[str, list[Rule]], *, personal: bool = True) -> CompiledRuleset:
    compiled: list[CompiledRule] = []
    for kind in KINDS:
        for rule in ruleset.get(kind, []):
            if not rule.enabled:
                continue  # "Disabled rules never match."
            if rule.kind == "room":
                conditions: list[Condition] = [Equals("room_id", rule.rule_id)]
            elif rule.kind == "sender":
                conditions = [Equals("sender", rule.rule_id)]
            else:
                conditions = [compile_condition(c) for c in _conditions_of(rule)]
            compiled.append(CompiledRule(rule.rule_id, tuple(conditions), Outcome.of(rule.actions)))
    return CompiledRuleset(tuple(compiled), personal)


def evaluate(
    ruleset: CompiledRuleset, event: EventView, user_id: str, display_name: str | None
) -> Outcome | None:
    """The outcome of the first rule that matches, or None when none does."""
    memo = event.memo
    for rule in ruleset.rules:
        for condition in rule.conditions:
            key = condition.key
            if key is None:
                if not condition.test(event, user_id, display_name):
                    break
                continue
            found = memo.get(key)
            if found is None:
                found = memo[key] = condition.test(event, user_id, display_name)
            if not found:
                break
        else:
            return rule.outcome
    return None


# Never equal to a user ID: evaluating the shared default set "for nobody".
NOBODY = "\x00nobody"


class RuleCache:
    """Compiled rulesets by user, loaded for many users at once.

    Used on the database writer thread (the send path) and invalidated there by rule
    changes; `invalidate` may also be called from the event loop (after a failed write),
    hence the lock. Bounded: past `max_users` entries the oldest go.
    """

    def __init__(self, max_users: int = 100_000) -> None:
        self.default = compile_ruleset(assemble(UserRules()), personal=False)
        self.max_users = max_users
        self._entries: dict[str, CompiledRuleset] = {}
        self._lock = threading.Lock()
        self.loads = 0  # users loaded from the database (for tests and metrics)

    def invalidate(self, user_id: str) -> None:
        with self._lock:
            self._entries.pop(user_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get_many(
        self,
        conn: apsw.Connection,
        user_ids: Iterable[str],
        load: Callable[[apsw.Connection, list[str]], dict[str, UserRules]],
    ) -> dict[str, CompiledRuleset]:
        found: dict[str, CompiledRuleset] = {}
        missing: list[str] = []
        with self._lock:
            for user_id in user_ids:
                entry = self._entries.get(user_id)
                if entry is None:
                    missing.append(user_id)
                else:
                    found[user_id] = entry
        if not missing:
            return found
        stored = load(conn, missing)
        self.loads += len(missing)
        fresh = {
            user_id: (
                self.default
                if user_id not in stored or stored[user_id].empty
                else compile_ruleset(assemble(stored[user_id]))
            )
            for user_id in missing
        }
        with self._lock:
            overflow = len(self._entries) + len(fresh) - self.max_users
            if overflow > 0:
                for user_id in list(self._entries)[:overflow]:
                    del self._entries[user_id]
            self._entries.update(fresh)
        found.update(fresh)
        return found

"""Which state a room config asks for (MSC4186 `required_state`), as pure data.

Both request shapes normalise to `StateSpec`: the unstable `[[type, state_key], ...]`
pairs with `*` wildcards, `$ME` and `$LAZY`, and the accepted `{include, exclude,
lazy_members}`. A room config carries a *set* of specs (one per rule the room matched)
and asks for a state event if any of them does: combining configs is a union, as the
MSC's "Combining room configs" says, with no subtle wildcard merging to get wrong.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

MEMBER = "m.room.member"
WILDCARD = "*"
ME = "$ME"
LAZY = "$LAZY"
# Bounds a client cannot push the server past (MSC4186: "the server may cap this").
MAX_TIMELINE_LIMIT = 100
MAX_REQUIRED_STATE = 256


class StateSpec(msgspec.Struct, frozen=True, array_like=True):
    """One rule's required_state. Tuples are sorted, so equal specs compare equal."""

    every_type_and_key: bool = False
    types: tuple[str, ...] = ()  # (type, any key)
    keys: tuple[str, ...] = ()  # (any type, key)
    pairs: tuple[tuple[str, str], ...] = ()
    lazy_members: bool = False
    exclude: StateSpec | None = None

    def matches(self, type_: str, state_key: str) -> bool:
        if self.exclude is not None and self.exclude.matches(type_, state_key):
            return False
        return (
            self.every_type_and_key
            or type_ in self.types
            or state_key in self.keys
            or (type_, state_key) in self.pairs
        )

    def all_members(self) -> bool:
        """Whether every member event matches (then the room's members are all read)."""
        if self.exclude is not None and (
            self.exclude.every_type_and_key or MEMBER in self.exclude.types
        ):
            return False
        return self.every_type_and_key or MEMBER in self.types

    def member_keys(self) -> set[str]:
        found = {key for type_, key in self.pairs if type_ == MEMBER}
        return found | set(self.keys)


def from_pairs(pairs: Iterable[tuple[str, str]], user_id: str) -> StateSpec:
    """The unstable shape: `*` for any type or key, `$ME` for the user, `$LAZY` for
    the members the timeline needs (only meaningful with m.room.member)."""
    every = False
    types: set[str] = set()
    keys: set[str] = set()
    exact: set[tuple[str, str]] = set()
    lazy = False
    for type_, key in pairs:
        if key == ME:
            key = user_id
        if type_ == MEMBER and key == LAZY:
            lazy = True
        elif type_ == WILDCARD and key == WILDCARD:
            every = True
        elif key == WILDCARD:
            types.add(type_)
        elif type_ == WILDCARD:
            keys.add(key)
        else:
            exact.add((type_, key))
    return _spec(every, types, keys, exact, lazy, None)


def from_elements(
    include: Iterable[tuple[str | None, str | None]],
    exclude: Iterable[tuple[str | None, str | None]],
    lazy_members: bool,
    user_id: str,
) -> StateSpec:
    """The accepted shape: an element without `type` or `state_key` matches any."""
    excluded = _elements(exclude, user_id, False, None)
    return _elements(
        include,
        user_id,
        lazy_members,
        None if excluded == StateSpec() else excluded,
    )


def _elements(
    elements: Iterable[tuple[str | None, str | None]],
    user_id: str,
    lazy: bool,
    exclude: StateSpec | None,
) -> StateSpec:
    every = False
    types: set[str] = set()
    keys: set[str] = set()
    exact: set[tuple[str, str]] = set()
    for type_, key in elements:
        if key == ME:
            key = user_id
        if type_ is None and key is None:
            every = True
        elif key is None:
            assert type_ is not None
            types.add(type_)
        elif type_ is None:
            keys.add(key)
        else:
            exact.add((type_, key))
    return _spec(every, types, keys, exact, lazy, exclude)


def _spec(
    every: bool,
    types: set[str],
    keys: set[str],
    exact: set[tuple[str, str]],
    lazy: bool,
    exclude: StateSpec | None,
) -> StateSpec:
    return StateSpec(
        every,
        tuple(sorted(types)),
        tuple(sorted(keys)),
        tuple(sorted(exact)),
        lazy,
        exclude,
    )


class RoomConfig(msgspec.Struct, frozen=True, array_like=True):
    """The combined config of every rule a room matched."""

    timeline_limit: int
    specs: frozenset[StateSpec]

    def matches(self, type_: str, state_key: str) -> bool:
        # A plain loop: any() over a generator costs twice as much on this hot path.
        for spec in self.specs:  # noqa: SIM110
            if spec.matches(type_, state_key):
                return True
        return False

    @property
    def lazy_members(self) -> bool:
        return _derived(self)[0]

    def all_members(self) -> bool:
        return _derived(self)[1]

    def member_keys(self) -> frozenset[str]:
        return _derived(self)[2]

    def combine(self, other: RoomConfig) -> RoomConfig:
        return intern(
            RoomConfig(max(self.timeline_limit, other.timeline_limit), self.specs | other.specs)
        )

    def expands(self, before: RoomConfig) -> bool:
        """Whether this asks for state the `before` config did not (MSC4186 "Changing
        room configs"): a spec that was not there before may match more."""
        if self is before:  # interned: the same config as the room was last sent with
            return False
        return not self.specs <= before.specs


# Equal configs as one object: a client repeats its request on every poll, and each
# room of a response compares its config with the one it was last sent with. A spec is
# hashed anew on each comparison (Structs do not keep their hash), ~3 µs a room; an
# interned config compares by identity.
MAX_INTERNED = 1024
_interned: dict[RoomConfig, RoomConfig] = {}


def intern(config: RoomConfig) -> RoomConfig:
    found = _interned.get(config)
    if found is None:
        if len(_interned) >= MAX_INTERNED:
            _interned.clear()  # many clients with odd configs: start over
        _interned[config] = found = config
    return found


# What every room of a list asks of its config again (a room-list request asked each of
# its 20 rooms' config three times, ~4 % of its Python calls in-process): worked out once per
# config, kept as long as the interned configs.
_derivations: dict[RoomConfig, tuple[bool, bool, frozenset[str]]] = {}


def _derived(config: RoomConfig) -> tuple[bool, bool, frozenset[str]]:
    """(lazy members, all members, the member state keys asked for) of `config`."""
    found = _derivations.get(config)
    if found is None:
        keys: set[str] = set()
        for spec in config.specs:
            keys |= spec.member_keys()
        found = (
            any(spec.lazy_members for spec in config.specs),
            any(spec.all_members() for spec in config.specs),
            frozenset(keys),
        )
        if len(_derivations) >= MAX_INTERNED:
            _derivations.clear()
        _derivations[config] = found
    return found


def room_config(timeline_limit: int, spec: StateSpec) -> RoomConfig:
    return intern(RoomConfig(timeline_limit, frozenset({spec})))


def encode_config(config: RoomConfig) -> bytes:
    return msgspec.json.encode(config)


_DECODER = msgspec.json.Decoder(RoomConfig)


def decode_config(raw: bytes) -> RoomConfig:
    return intern(_DECODER.decode(raw))

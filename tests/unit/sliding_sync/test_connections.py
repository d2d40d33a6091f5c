"""The in-memory connection table stays bounded (connections.py): a device holds at most
MAX_CONNECTIONS_PER_DEVICE connections, its least recently used pushed out first, and a
connection idle for IDLE_MS leaves memory once the database holds it."""

from __future__ import annotations

from dendrite_lite.sliding_sync.connections import IDLE_MS, Connections, ConnKey, Position
from dendrite_lite.storage.sliding_sync import MAX_CONNECTIONS_PER_DEVICE

USER, DEVICE = "@a:hs", "PHONE"


def _position(connections: Connections) -> Position:
    return Position(connections.new_pos_nid(), 1, 0, {}, {})


def _table() -> Connections:
    connections = Connections()
    connections.start_numbering(0, 0, 1000)
    return connections


def _key(conn_id: str, device_id: str = DEVICE) -> ConnKey:
    return (USER, device_id, conn_id)


def test_a_device_holds_at_most_the_limit_and_the_least_recently_used_goes() -> None:
    connections = _table()
    for i in range(MAX_CONNECTIONS_PER_DEVICE):
        _, evicted = connections.new_connection(_key(f"c{i}"), 1000 + i)
        assert evicted == []
    # c0 is the oldest, but in use: c1 is the least recently used one.
    connections.touch(_key("c0"), 5000)
    _, evicted = connections.new_connection(_key("extra"), 6000)
    assert evicted == [_key("c1")]
    assert _key("c1") not in connections.by_key
    assert _key("c0") in connections.by_key and _key("extra") in connections.by_key
    assert sum(k[1] == DEVICE for k in connections.by_key) == MAX_CONNECTIONS_PER_DEVICE


def test_a_client_cycling_through_conn_ids_does_not_grow_the_table() -> None:
    connections = _table()
    evicted_total = 0
    for i in range(10 * MAX_CONNECTIONS_PER_DEVICE):
        _, evicted = connections.new_connection(_key(f"loop-{i}"), 1000 + i)
        evicted_total += len(evicted)
    assert len(connections.by_key) == MAX_CONNECTIONS_PER_DEVICE
    assert evicted_total == 9 * MAX_CONNECTIONS_PER_DEVICE
    # the newest ones stay
    assert _key(f"loop-{10 * MAX_CONNECTIONS_PER_DEVICE - 1}") in connections.by_key


def test_other_devices_are_not_pushed_out() -> None:
    connections = _table()
    connections.new_connection(_key("room-list", "LAPTOP"), 1000)
    for i in range(MAX_CONNECTIONS_PER_DEVICE + 3):
        connections.new_connection(_key(f"c{i}"), 2000 + i)
    assert _key("room-list", "LAPTOP") in connections.by_key


def test_a_loaded_connection_counts_toward_its_device() -> None:
    connections = _table()
    for i in range(MAX_CONNECTIONS_PER_DEVICE):
        connections.new_connection(_key(f"c{i}"), 1000 + i)
    loaded, evicted = connections.install(_key("back"), 99, _position(connections), 9000)
    assert evicted == [_key("c0")]
    assert connections.by_key[_key("back")].positions == {loaded.pos_nid: loaded}


def test_idle_connections_leave_memory_only_once_saved() -> None:
    connections = _table()
    saved, _ = connections.new_connection(_key("saved"), 1000)
    saved.saved = _position(connections)
    connections.new_connection(_key("never-saved"), 1000)
    changed, _ = connections.new_connection(_key("changed"), 1000)
    changed.saved = _position(connections)
    busy, _ = connections.new_connection(_key("busy"), 1000)
    busy.saved = _position(connections)
    connections.touch(_key("busy"), 1000 + IDLE_MS)

    # last used at 1000: idle once the cut-off (now - IDLE_MS) passes it
    assert connections.forget_idle(1001, unsaved={_key("changed")}) == 1
    assert set(connections.by_key) == {_key("never-saved"), _key("changed"), _key("busy")}
    # forgotten connections free their device's slots
    for i in range(MAX_CONNECTIONS_PER_DEVICE - 3):
        _, evicted = connections.new_connection(_key(f"c{i}"), 2000 + i)
        assert evicted == []

"""The message path's three requests (PUT send, GET /sync, sliding sync) are served by
api/fast_lane.py rather than Litestar: what the framework gave them must still hold
(errors, limits, guests, query tokens, CORS, metrics). The generic sweeps of
test_bad_input.py cover them too; these are the cases particular to these routes."""

from __future__ import annotations

import httpx

from tests.e2e import test_guest_access as guests
from tests.e2e._rooms_server import message, new_client, q, txn
from tests.e2e.harness import Server
from tests.e2e.matrix import CS, expect
from tests.e2e.test_guest_access import register_guest
from tests.e2e.test_sliding_sync import PATH, room_list_body, ss, ss_raw

MAX_BODY = 1024 * 1024
guest_server = guests.guest_server  # the fixture of test_guest_access.py


def test_sync_query_parameters_are_checked(http: httpx.Client) -> None:
    alice = new_client(http)
    for params, errcode in [
        ({"timeout": "soon"}, "M_INVALID_PARAM"),
        ({"timeout": "-1"}, "M_INVALID_PARAM"),
        ({"full_state": "maybe"}, "M_INVALID_PARAM"),
        ({"set_presence": "busy"}, "M_INVALID_PARAM"),
        ({"filter": "not-an-id"}, "M_INVALID_PARAM"),
        ({"since": "garbage"}, "M_INVALID_PARAM"),
    ]:
        r = http.get(f"{CS}/sync", params=params, headers=alice.user.headers)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["errcode"] == errcode, params
        assert r.headers["access-control-allow-origin"] == "*"
    ok = http.get(
        f"{CS}/sync", params={"full_state": "true", "timeout": "0"}, headers=alice.user.headers
    )
    assert ok.status_code == 200 and "next_batch" in ok.json()


def test_access_token_in_the_query_and_bad_headers(http: httpx.Client) -> None:
    alice = new_client(http)
    token = alice.user.access_token
    assert http.get(f"{CS}/sync", params={"access_token": token}).status_code == 200
    r = http.get(f"{CS}/sync")
    assert (r.status_code, r.json()["errcode"]) == (401, "M_MISSING_TOKEN")
    r = http.get(f"{CS}/sync", headers={"Authorization": "Basic abc"})
    assert (r.status_code, r.json()["errcode"]) == (401, "M_MISSING_TOKEN")
    r = http.post(PATH, json=room_list_body(), headers={"Authorization": "Bearer nope"})
    assert (r.status_code, r.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    r = http.put(f"{CS}/rooms/{q('!x:localhost')}/send/m.room.message/{txn()}", json={})
    assert (r.status_code, r.json()["errcode"]) == (401, "M_MISSING_TOKEN")


def test_send_bodies(http: httpx.Client) -> None:
    alice = new_client(http)
    room = alice.create_room()
    path = f"{CS}/rooms/{q(room)}/send/m.room.message/"
    headers = {**alice.user.headers, "Content-Type": "application/json"}
    for body, status, errcode in [
        (b"", 400, "M_NOT_JSON"),
        (b"{", 400, "M_NOT_JSON"),
        (b"[1]", 400, "M_BAD_JSON"),
        (b"null", 400, "M_BAD_JSON"),
        (b"[" * 10_000 + b"]" * 10_000, 400, "M_BAD_JSON"),
        (b'{"a":"' + b"x" * MAX_BODY + b'"}', 413, "M_TOO_LARGE"),
    ]:
        r = http.put(path + txn(), content=body, headers=headers)
        assert (r.status_code, r.json()["errcode"]) == (status, errcode), body[:20]
    # idempotent per transaction ID, %2F in a path segment is a slash of the value
    first = expect(http.put(path + "t%2F1", json=message("once"), headers=headers), 200)
    again = expect(http.put(path + "t%2F1", json=message("once"), headers=headers), 200)
    assert first == again
    r = http.put(
        f"{CS}/rooms/{q('!nowhere:localhost')}/send/m.room.message/{txn()}",
        json=message("x"),
        headers=headers,
    )
    assert r.status_code == 403


def test_sliding_sync_bodies_and_guests(guest_server: Server) -> None:
    with guest_server.client() as http:
        alice = new_client(http)
        r = http.post(PATH, content=b"{", headers=alice.user.headers)
        assert (r.status_code, r.json()["errcode"]) == (400, "M_NOT_JSON")
        r = http.post(
            PATH, params={"timeout": "x"}, json=room_list_body(), headers=alice.user.headers
        )
        assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_PARAM")
        r = http.post(PATH, content=b'{"a":"' + b"x" * MAX_BODY + b'"}', headers=alice.user.headers)
        assert (r.status_code, r.json()["errcode"]) == (413, "M_TOO_LARGE")
        guest = register_guest(http)
        r = http.post(PATH, json=room_list_body(), headers=guest.user.headers)
        assert (r.status_code, r.json()["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN")
        assert http.get(f"{CS}/sync", headers=guest.user.headers).status_code == 200


def test_metrics_count_the_fast_routes(http: httpx.Client) -> None:
    alice = new_client(http)
    expect(http.get(f"{CS}/sync", headers=alice.user.headers), 200)
    text = http.get("/metrics").text
    assert 'endpoint="/_matrix/client/v3/sync"' in text


def test_a_body_parsed_once_still_answers_each_user_for_themselves(http: httpx.Client) -> None:
    """The fast lane keeps parsed sliding sync requests by their body (ParsedBodies); the
    same body from another user must still mean that user's `$ME`, each answer carries
    its own request's txn_id, and a body that failed to parse must fail again."""
    alice, bob = new_client(http), new_client(http)
    room = alice.create_room()
    alice.invite(room, bob.user_id)
    bob.join(room)
    body = {
        "conn_id": "mine",
        "lists": {
            "all": {
                "ranges": [[0, 9]],
                "required_state": [["m.room.member", "$ME"]],
                "timeline_limit": 0,
            }
        },
    }
    for n, client in enumerate((alice, bob, alice, bob)):
        answer = ss(client, {**body, "txn_id": f"t{n}"})
        assert answer["txn_id"] == f"t{n}"
        members = answer["rooms"][room]["required_state"]
        assert [(e["type"], e["state_key"]) for e in members] == [("m.room.member", client.user_id)]
    bad = {"conn_id": "mine", "lists": {"all": {"ranges": [[9, 0]]}}}
    for client in (alice, alice, bob):
        r = ss_raw(client, bad)
        assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_PARAM"), r.text
    for client in (alice, bob):
        r = http.post(PATH, content=b"{", headers=client.user.headers)
        assert (r.status_code, r.json()["errcode"]) == (400, "M_NOT_JSON")
    r = http.post(PATH, json=body)
    assert (r.status_code, r.json()["errcode"]) == (401, "M_MISSING_TOKEN")

"""Dehydrated devices (MSC3814) against the real server, with the request shapes that
matrix-rust-sdk (Element, matrix-js-sdk's Rust crypto) sends.

https://github.com/matrix-org/matrix-spec-proposals/pull/3814
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any
from urllib.parse import quote

import httpx
import nacl.signing

from tests.e2e.matrix import CS, User, expect, login, password_auth, register_user, whoami
from tests.e2e.test_keys_client import curve_public, public_b64, sign

MSC3814 = "/_matrix/client/unstable/org.matrix.msc3814.v1"
DEVICE_PATH = f"{MSC3814}/dehydrated_device"


# -- helpers -------------------------------------------------------------------------------


def curve_key() -> str:
    """A device ID as clients make them: an unpadded base64 Curve25519 key ('/' and '+')."""
    while True:
        value = secrets.token_urlsafe(32)[:43].replace("-", "+").replace("_", "/")
        if "/" in value:
            return value


def signing_key(device_id: str) -> nacl.signing.SigningKey:
    """The device's ed25519 key, the same for every upload of one device ID."""
    return nacl.signing.SigningKey(hashlib.sha256(device_id.encode()).digest())


def signed(user: User, device_id: str, obj: dict[str, Any]) -> dict[str, Any]:
    return sign(obj, user.user_id, f"ed25519:{device_id}", signing_key(device_id))


def device_keys(user: User, device_id: str) -> dict[str, Any]:
    """Device keys signed by the device, as the Rust SDK makes them for a dehydrated device."""
    key = public_b64(signing_key(device_id))
    return signed(
        user,
        device_id,
        {
            "user_id": user.user_id,
            "device_id": device_id,
            "dehydrated": True,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {f"curve25519:{device_id}": device_id, f"ed25519:{device_id}": key},
        },
    )


def upload_body(user: User, device_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "device_data": {
            "algorithm": "org.matrix.msc3814.v2",
            "device_pickle": "encrypted-" + device_id,
            "nonce": "bm9uY2U",
        },
        "initial_device_display_name": "Dehydrated device",
        "device_keys": device_keys(user, device_id),
        "one_time_keys": {
            f"signed_curve25519:AAAAA{n}": signed(user, device_id, {"key": curve_public()})
            for n in range(3)
        },
        "fallback_keys": {
            "signed_curve25519:AAAAAQ": signed(
                user, device_id, {"key": curve_public(), "fallback": True}
            )
        },
        **extra,
    }


def put_device(
    http: httpx.Client, user: User, body: Any, status: int = 200, errcode: str | None = None
) -> Any:
    response = http.put(
        DEVICE_PATH,
        headers={**user.headers, "Content-Type": "application/json"},
        content=json.dumps(body).encode(),
    )
    return expect(response, status, errcode)


def dehydrate(http: httpx.Client, user: User, device_id: str | None = None) -> str:
    device_id = device_id or curve_key()
    assert put_device(http, user, upload_body(user, device_id)) == {"device_id": device_id}
    return device_id


def events_path(device_id: str) -> str:
    return f"{DEVICE_PATH}/{quote(device_id, safe='')}/events"


def fetch_events(
    http: httpx.Client,
    user: User,
    device_id: str,
    next_batch: str | None = None,
    limit: int | None = None,
    status: int = 200,
    errcode: str | None = None,
) -> Any:
    body = {} if next_batch is None else {"next_batch": next_batch}
    params = {} if limit is None else {"limit": str(limit)}
    response = http.post(events_path(device_id), headers=user.headers, json=body, params=params)
    return expect(response, status, errcode)


def fetch_all(http: httpx.Client, user: User, device_id: str, limit: int) -> list[Any]:
    """Page through the inbox as clients do: until a page comes back empty."""
    events: list[Any] = []
    next_batch = None
    for _ in range(100):
        page = fetch_events(http, user, device_id, next_batch, limit)
        assert set(page) == {"events", "next_batch"} and isinstance(page["next_batch"], str)
        assert len(page["events"]) <= limit
        if not page["events"]:
            return events
        events.extend(page["events"])
        next_batch = page["next_batch"]
    raise AssertionError("the inbox never ran dry")


def send_to_device(
    http: httpx.Client, sender: User, messages: dict[str, dict[str, Any]], type_: str
) -> None:
    path = f"{CS}/sendToDevice/{quote(type_, safe='')}/{secrets.token_hex(8)}"
    expect(http.put(path, headers=sender.headers, json={"messages": messages}), 200)


def device_ids(http: httpx.Client, user: User) -> set[str]:
    body = expect(http.get(f"{CS}/devices", headers=user.headers), 200)
    return {device["device_id"] for device in body["devices"]}


# -- tests ---------------------------------------------------------------------------------


def test_no_dehydrated_device(http: httpx.Client, user: User) -> None:
    # M_NOT_FOUND (not M_UNRECOGNIZED) is how clients learn the server supports MSC3814.
    expect(http.get(DEVICE_PATH, headers=user.headers), 404, "M_NOT_FOUND")
    expect(http.delete(DEVICE_PATH, headers=user.headers), 404, "M_NOT_FOUND")
    fetch_events(http, user, "ANY", status=403, errcode="M_FORBIDDEN")
    expect(http.get(DEVICE_PATH), 401, "M_MISSING_TOKEN")


def test_upload_get_and_delete(http: httpx.Client, user: User) -> None:
    device_id = curve_key()
    body = upload_body(user, device_id)
    assert put_device(http, user, body) == {"device_id": device_id}
    got = expect(http.get(DEVICE_PATH, headers=user.headers), 200)
    assert got == {"device_id": device_id, "device_data": body["device_data"]}
    # It is a device of the user like any other.
    assert device_ids(http, user) == {user.device_id, device_id}
    one = expect(http.get(f"{CS}/devices/{quote(device_id, safe='')}", headers=user.headers), 200)
    assert one["display_name"] == "Dehydrated device"

    assert expect(http.delete(DEVICE_PATH, headers=user.headers), 200) == {"device_id": device_id}
    expect(http.get(DEVICE_PATH, headers=user.headers), 404, "M_NOT_FOUND")
    assert device_ids(http, user) == {user.device_id}
    fetch_events(http, user, device_id, status=403, errcode="M_FORBIDDEN")
    # The user's own device was never touched.
    assert whoami(http, user.access_token)["device_id"] == user.device_id


def test_device_data_is_kept_exactly(http: httpx.Client, user: User) -> None:
    device_id = curve_key()
    data = '{"algorithm" : "org.matrix.msc3814.v2",  "device_pickle": "p\\/q", "n": 1.50}'
    body = json.dumps(upload_body(user, device_id)).replace(
        json.dumps(upload_body(user, device_id)["device_data"]), data
    )
    assert data in body
    response = http.put(
        DEVICE_PATH,
        headers={**user.headers, "Content-Type": "application/json"},
        content=body.encode(),
    )
    expect(response, 200)
    served = http.get(DEVICE_PATH, headers=user.headers)
    expect(served, 200)
    assert data.encode() in served.content


def test_upload_replaces_the_previous_device(http: httpx.Client, user: User) -> None:
    sender = register_user(http)
    first = dehydrate(http, user)
    send_to_device(http, sender, {user.user_id: {first: {"n": 1}}}, "org.example.old")
    second = dehydrate(http, user)
    assert expect(http.get(DEVICE_PATH, headers=user.headers), 200)["device_id"] == second
    assert device_ids(http, user) == {user.device_id, second}
    fetch_events(http, user, first, status=403, errcode="M_FORBIDDEN")
    assert fetch_all(http, user, second, 10) == []
    # Uploading again under the same ID replaces it too, inbox and all.
    send_to_device(http, sender, {user.user_id: {second: {"n": 2}}}, "org.example.old")
    assert len(fetch_all(http, user, second, 10)) == 1
    assert dehydrate(http, user, second) == second
    assert device_ids(http, user) == {user.device_id, second}
    assert fetch_all(http, user, second, 10) == []


def test_to_device_messages_page_by_page(http: httpx.Client, user: User) -> None:
    sender = register_user(http)
    other_device = login(http, user.localpart)["device_id"]
    device_id = dehydrate(http, user)
    # Sent to the dehydrated device by ID, to every device ('*') and to another device.
    sent: list[tuple[str, str, dict[str, Any]]] = []
    for n in range(7):
        content = {"n": n, "body": f"room key {n}"}
        send_to_device(http, sender, {user.user_id: {device_id: content}}, "m.room.encrypted")
        sent.append((sender.user_id, "m.room.encrypted", content))
    send_to_device(http, sender, {user.user_id: {"*": {"all": True}}}, "org.example.all")
    sent.append((sender.user_id, "org.example.all", {"all": True}))
    send_to_device(http, sender, {user.user_id: {other_device: {"x": 1}}}, "org.example.not")
    # The user's own devices may send to it too (in one request with others: one position).
    send_to_device(
        http,
        user,
        {user.user_id: {device_id: {"own": 1}, other_device: {"own": 2}}},
        "org.example.own",
    )
    sent.append((user.user_id, "org.example.own", {"own": 1}))

    expected = [{"sender": s, "type": t, "content": c} for s, t, c in sent]
    for limit in (1, 3, 9, 100):
        assert fetch_all(http, user, device_id, limit) == expected

    # Paging by hand: every page carries next_batch; the one after the last is empty
    # and keeps answering empty with a token.
    page = fetch_events(http, user, device_id, limit=4)
    assert page["events"] == expected[:4]
    page = fetch_events(http, user, device_id, page["next_batch"], limit=4)
    assert page["events"] == expected[4:8]
    page = fetch_events(http, user, device_id, page["next_batch"], limit=4)
    assert page["events"] == expected[8:]
    last = fetch_events(http, user, device_id, page["next_batch"], limit=4)
    assert last["events"] == [] and isinstance(last["next_batch"], str)
    assert fetch_events(http, user, device_id, last["next_batch"])["events"] == []
    # Reading does not consume: an interrupted rehydration can start over (MSC3814).
    assert fetch_all(http, user, device_id, 5) == expected
    # New messages show up after the last token.
    send_to_device(http, sender, {user.user_id: {device_id: {"late": 1}}}, "org.example.late")
    late = fetch_events(http, user, device_id, last["next_batch"])
    assert late["events"] == [
        {"sender": sender.user_id, "type": "org.example.late", "content": {"late": 1}}
    ]
    # No body at all is the first page too.
    response = http.post(events_path(device_id), headers=user.headers)
    assert expect(response, 200)["events"][:1] == expected[:1]
    # Deleting the device drops its inbox.
    expect(http.delete(DEVICE_PATH, headers=user.headers), 200)
    assert dehydrate(http, user, device_id) == device_id
    assert fetch_all(http, user, device_id, 100) == []


def test_only_the_users_own_dehydrated_device(http: httpx.Client, user: User) -> None:
    other = register_user(http)
    device_id = dehydrate(http, user)
    fetch_events(http, other, device_id, status=403, errcode="M_FORBIDDEN")
    expect(http.get(DEVICE_PATH, headers=other.headers), 404, "M_NOT_FOUND")
    # A real device of the user is not the dehydrated device.
    fetch_events(http, user, user.device_id, status=403, errcode="M_FORBIDDEN")
    # Two users may each have one, even under the same ID.
    assert dehydrate(http, other, device_id) == device_id
    assert expect(http.get(DEVICE_PATH, headers=user.headers), 200)["device_id"] == device_id


def test_deleted_with_the_devices_api(http: httpx.Client, user: User) -> None:
    device_id = dehydrate(http, user)
    path = f"{CS}/devices/{quote(device_id, safe='')}"
    state = expect(http.request("DELETE", path, headers=user.headers), 401)
    auth = password_auth(user, state["session"])
    expect(http.request("DELETE", path, headers=user.headers, json={"auth": auth}), 200)
    expect(http.get(DEVICE_PATH, headers=user.headers), 404, "M_NOT_FOUND")
    fetch_events(http, user, device_id, status=403, errcode="M_FORBIDDEN")
    # ... and with /logout/all.
    dehydrate(http, user)
    expect(http.post(f"{CS}/logout/all", headers=user.headers, json={}), 200)
    fresh = login(http, user.localpart)
    headers = {"Authorization": f"Bearer {fresh['access_token']}"}
    expect(http.get(DEVICE_PATH, headers=headers), 404, "M_NOT_FOUND")


def test_bad_uploads(http: httpx.Client, user: User) -> None:
    device_id = curve_key()
    good = upload_body(user, device_id)
    bad_json: list[Any] = [
        {k: v for k, v in good.items() if k != "device_keys"},
        {k: v for k, v in good.items() if k != "device_data"},
        {k: v for k, v in good.items() if k != "device_id"},
        {**good, "device_id": 5},
        {**good, "device_data": "opaque"},
        {**good, "device_data": {"device_pickle": "no algorithm"}},
        {**good, "device_data": {"algorithm": 2}},
        {**good, "device_keys": []},
        {**good, "device_keys": {**good["device_keys"], "keys": []}},
        {**good, "device_keys": {k: v for k, v in good["device_keys"].items() if k != "user_id"}},
        {**good, "initial_device_display_name": 5},
        {**good, "one_time_keys": []},
        {**good, "one_time_keys": {"signed_curve25519:A": 5}},
        {**good, "fallback_keys": "none"},
        [good],
        None,
    ]
    for body in bad_json:
        put_device(http, user, body, 400, "M_BAD_JSON")
    invalid: list[Any] = [
        {**good, "device_id": ""},
        {**good, "device_id": "D" * 300},
        {**good, "initial_device_display_name": "n" * 1001},
        {**good, "device_data": {"algorithm": ""}},
        # The keys must be the uploader's, for this device.
        {**good, "device_keys": {**good["device_keys"], "user_id": "@mallory:localhost"}},
        {**good, "device_keys": {**good["device_keys"], "device_id": "OTHER"}},
        {**good, "one_time_keys": {"nocolon": "k"}},
        {**good, "fallback_keys": {":A": "k"}},
    ]
    for body in invalid:
        put_device(http, user, body, 400, "M_INVALID_PARAM")
    big = {**good, "device_data": {"algorithm": "a", "device_pickle": "p" * 200_000}}
    put_device(http, user, big, 413, "M_TOO_LARGE")
    huge = {**good, "device_data": {"algorithm": "a", "device_pickle": "p" * 2_000_000}}
    put_device(http, user, huge, 413, "M_TOO_LARGE")
    for content in (b"", b"{", b"nope"):
        response = http.put(DEVICE_PATH, headers=user.headers, content=content)
        expect(response, 400, "M_NOT_JSON")
    # A real device's ID is never taken over; the device keeps working.
    taken = upload_body(user, user.device_id)
    put_device(http, user, taken, 400, "M_INVALID_PARAM")
    assert whoami(http, user.access_token)["device_id"] == user.device_id
    # Nothing above created a device.
    expect(http.get(DEVICE_PATH, headers=user.headers), 404, "M_NOT_FOUND")
    assert device_ids(http, user) == {user.device_id}
    # Optional parts may be left out (or null).
    minimal = {k: good[k] for k in ("device_id", "device_data", "device_keys")}
    assert put_device(http, user, minimal) == {"device_id": device_id}
    with_nulls = {**minimal, "one_time_keys": None, "initial_device_display_name": None}
    assert put_device(http, user, with_nulls) == {"device_id": device_id}
    # A failed replacement leaves the current dehydrated device in place.
    put_device(http, user, taken, 400, "M_INVALID_PARAM")
    assert expect(http.get(DEVICE_PATH, headers=user.headers), 200)["device_id"] == device_id


def test_bad_event_requests(http: httpx.Client, user: User) -> None:
    device_id = dehydrate(http, user)
    for token in ("garbage", "d", "d1", "s5_0", "d-1_0", "d1_x", ""):
        fetch_events(http, user, device_id, token, status=400, errcode="M_INVALID_PARAM")
    for limit in (0, -5):
        fetch_events(http, user, device_id, limit=limit, status=400, errcode="M_INVALID_PARAM")
    response = http.post(events_path(device_id), headers=user.headers, params={"limit": "x"})
    expect(response, 400, "M_INVALID_PARAM")
    for body in ({"next_batch": 5}, [], {"next_batch": ["d1_0"]}):
        response = http.post(events_path(device_id), headers=user.headers, json=body)
        expect(response, 400, "M_BAD_JSON")
    response = http.post(events_path(device_id), headers=user.headers, content=b"{")
    expect(response, 400, "M_NOT_JSON")


def test_hostile_bodies_never_500(http: httpx.Client, user: User) -> None:
    device_id = dehydrate(http, user)
    bodies = [
        b"null",
        b"-1e999",
        b"[" * 50_000 + b"]" * 50_000,
        b'{"device_id": "D", "device_data": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
        b'{"next_batch": "d99999999999999999999999999_1"}',
        b'{"device_id": "\\ud800", "device_data": {"algorithm": "\\udfff"}}',
        b"\xff\xfe\x00{",
    ]
    for method, path in (("PUT", DEVICE_PATH), ("POST", events_path(device_id))):
        for body in bodies:
            response = http.request(method, path, headers=user.headers, content=body)
            assert 400 <= response.status_code < 500, (path, body[:40], response.text)
            assert response.json()["errcode"].startswith("M_")
    assert expect(http.get(DEVICE_PATH, headers=user.headers), 200)["device_id"] == device_id


def test_keys_are_published_like_any_devices(http: httpx.Client, user: User) -> None:
    device_id = dehydrate(http, user)
    query = expect(
        http.post(
            f"{CS}/keys/query", headers=user.headers, json={"device_keys": {user.user_id: []}}
        ),
        200,
    )
    served = query["device_keys"][user.user_id][device_id]
    assert served["dehydrated"] is True
    assert served["keys"][f"ed25519:{device_id}"] == public_b64(signing_key(device_id))
    claim = expect(
        http.post(
            f"{CS}/keys/claim",
            headers=user.headers,
            json={"one_time_keys": {user.user_id: {device_id: "signed_curve25519"}}},
        ),
        200,
    )
    assert list(claim["one_time_keys"][user.user_id][device_id]) != []


def test_wrongly_signed_keys_store_nothing(http: httpx.Client, user: User) -> None:
    device_id = curve_key()
    body = upload_body(user, device_id)
    body["device_keys"]["signatures"][user.user_id][f"ed25519:{device_id}"] = "AAAA"
    put_device(http, user, body, 400)
    expect(http.get(DEVICE_PATH, headers=user.headers), 404, "M_NOT_FOUND")
    devices = expect(http.get(f"{CS}/devices", headers=user.headers), 200)["devices"]
    assert device_id not in [d["device_id"] for d in devices]


def test_events_paged_by_get_as_current_clients_do(http: httpx.Client, user: User) -> None:
    """MSC3814's current shape: GET with `from`; no next_batch on the last page."""
    device_id = dehydrate(http, user)
    sender = register_user(http, "dehydr-sender")
    messages = {user.user_id: {device_id: {"n": 1}}}
    for txn in ("a", "b", "c"):
        expect(
            http.put(
                f"{CS}/sendToDevice/m.test/{txn}",
                headers=sender.headers,
                json={"messages": messages},
            ),
            200,
        )
    path = f"{DEVICE_PATH}/{quote(device_id, safe='')}/events"
    first = expect(http.get(path, headers=user.headers, params={"limit": 2}), 200)
    assert len(first["events"]) == 2 and "next_batch" in first
    last = expect(
        http.get(path, headers=user.headers, params={"limit": 2, "from": first["next_batch"]}),
        200,
    )
    assert len(last["events"]) == 1
    assert "next_batch" not in last

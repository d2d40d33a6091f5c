"""Server-side key backups against the real server: versions, keys, the replacement rule,
etag and count, wrong versions, bad input, big uploads and racing uploads; and the
account data that SDKs use for secret storage.

https://spec.matrix.org/latest/client-server-api/#server-side-key-backups
https://spec.matrix.org/latest/client-server-api/#secret-storage
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.harness import Server
from tests.e2e.matrix import CS, User, expect, register_user

ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
AUTH_DATA = {
    "public_key": "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo",
    "signatures": {"@alice:localhost": {"ed25519:DEVICE": "c2lnbmF0dXJl"}},
}
ROOM = "!room:localhost"
MiB = 1024 * 1024


# -- helpers -------------------------------------------------------------------------------


def session_data(marker: str) -> dict[str, str]:
    return {"ephemeral": f"eph-{marker}", "ciphertext": f"ct-{marker}", "mac": f"mac-{marker}"}


def json_headers(user: User) -> dict[str, str]:
    return {**user.headers, "Content-Type": "application/json"}


def key(index: int = 0, forwarded: int = 0, verified: bool = False, marker: str = "k") -> Any:
    return {
        "first_message_index": index,
        "forwarded_count": forwarded,
        "is_verified": verified,
        "session_data": session_data(marker),
    }


def create_version(
    http: httpx.Client, user: User, auth_data: Any = None, algorithm: str = ALGORITHM
) -> str:
    body = {"algorithm": algorithm, "auth_data": AUTH_DATA if auth_data is None else auth_data}
    response = expect(http.post(f"{CS}/room_keys/version", headers=user.headers, json=body), 200)
    assert set(response) == {"version"} and isinstance(response["version"], str)
    version: str = response["version"]
    return version


def version_info(http: httpx.Client, user: User, version: str | None = None) -> Any:
    path = f"{CS}/room_keys/version" + ("" if version is None else f"/{quote(version)}")
    return expect(http.get(path, headers=user.headers), 200)


def keys_path(room_id: str | None = None, session_id: str | None = None) -> str:
    path = f"{CS}/room_keys/keys"
    if room_id is not None:
        path += "/" + quote(room_id, safe="")
        if session_id is not None:
            path += "/" + quote(session_id, safe="")
    return path


def put_key(
    http: httpx.Client,
    user: User,
    version: str,
    session_id: str,
    data: Any,
    room_id: str = ROOM,
    status: int = 200,
    errcode: str | None = None,
) -> Any:
    response = http.put(
        keys_path(room_id, session_id),
        headers=json_headers(user),
        params={"version": version},
        content=json.dumps(data).encode(),
    )
    return expect(response, status, errcode)


def put_keys(
    http: httpx.Client,
    user: User,
    version: str,
    rooms: dict[str, dict[str, Any]],
    status: int = 200,
    errcode: str | None = None,
) -> Any:
    body = {"rooms": {room: {"sessions": sessions} for room, sessions in rooms.items()}}
    response = http.put(
        keys_path(),
        headers=json_headers(user),
        params={"version": version},
        content=json.dumps(body).encode(),
        timeout=120,
    )
    return expect(response, status, errcode)


def get_keys(
    http: httpx.Client,
    user: User,
    version: str,
    room_id: str | None = None,
    session_id: str | None = None,
    status: int = 200,
    errcode: str | None = None,
) -> Any:
    response = http.get(
        keys_path(room_id, session_id), headers=user.headers, params={"version": version}
    )
    return expect(response, status, errcode)


def delete_keys(
    http: httpx.Client,
    user: User,
    version: str,
    room_id: str | None = None,
    session_id: str | None = None,
    status: int = 200,
    errcode: str | None = None,
) -> Any:
    response = http.delete(
        keys_path(room_id, session_id), headers=user.headers, params={"version": version}
    )
    return expect(response, status, errcode)


def update_response(body: Any) -> tuple[str, int]:
    assert set(body) == {"etag", "count"}, body
    assert isinstance(body["etag"], str) and isinstance(body["count"], int)
    return body["etag"], body["count"]


# -- versions ------------------------------------------------------------------------------


def test_no_backup_is_404(http: httpx.Client, user: User) -> None:
    body = expect(http.get(f"{CS}/room_keys/version", headers=user.headers), 404, "M_NOT_FOUND")
    assert body["error"]
    expect(http.get(f"{CS}/room_keys/version/1", headers=user.headers), 404, "M_NOT_FOUND")
    put_key(http, user, "1", "s", key(), status=404, errcode="M_NOT_FOUND")
    get_keys(http, user, "1", status=404, errcode="M_NOT_FOUND")
    delete_keys(http, user, "1", status=404, errcode="M_NOT_FOUND")


def test_create_get_and_newer_versions(http: httpx.Client, user: User) -> None:
    first = create_version(http, user)
    info = version_info(http, user)
    assert info == {
        "algorithm": ALGORITHM,
        "auth_data": AUTH_DATA,
        "count": 0,
        "etag": info["etag"],
        "version": first,
    }
    assert isinstance(info["etag"], str)
    assert version_info(http, user, first) == info

    second = create_version(http, user, {"public_key": "second"})
    assert int(second) > int(first)
    assert version_info(http, user)["version"] == second
    assert version_info(http, user)["auth_data"] == {"public_key": "second"}
    # The older version still exists until deleted.
    assert version_info(http, user, first)["auth_data"] == AUTH_DATA


def test_versions_are_per_user(http: httpx.Client, user: User) -> None:
    other = register_user(http)
    version = create_version(http, user)
    expect(http.get(f"{CS}/room_keys/version", headers=other.headers), 404, "M_NOT_FOUND")
    expect(http.get(f"{CS}/room_keys/version/{version}", headers=other.headers), 404, "M_NOT_FOUND")
    put_key(http, user, version, "s", key())
    get_keys(http, other, version, status=404, errcode="M_NOT_FOUND")
    delete_keys(http, other, version, status=404, errcode="M_NOT_FOUND")
    assert version_info(http, user)["count"] == 1


def test_auth_data_and_session_data_are_kept_exactly(http: httpx.Client, user: User) -> None:
    # Odd spacing, escapes, a float with a trailing zero and non-ASCII text: all as sent.
    auth_data = (
        '{ "public_key" : "abc",  "x": 1.50, "e": "\\u00e9t\\u00e9", "n": [1, {"a" :null}],'
        ' "s": "Zoë" }'
    )
    body = '{"algorithm": "' + ALGORITHM + '", "auth_data": ' + auth_data + "}"
    response = http.post(
        f"{CS}/room_keys/version",
        headers={**user.headers, "Content-Type": "application/json"},
        content=body.encode(),
    )
    version = expect(response, 200)["version"]
    for path in (f"{CS}/room_keys/version", f"{CS}/room_keys/version/{version}"):
        served = http.get(path, headers=user.headers)
        expect(served, 200)
        assert auth_data.encode() in served.content, served.content

    data = '{"ciphertext" : "c\\/t",   "mac":"m", "ephemeral": "e", "f": 2.0}'
    one = (
        '{"first_message_index": 3, "forwarded_count": 1, "is_verified": false,'
        ' "session_data": ' + data + "}"
    )
    response = http.put(
        keys_path(ROOM, "sess"),
        headers={**user.headers, "Content-Type": "application/json"},
        params={"version": version},
        content=one.encode(),
    )
    expect(response, 200)
    for path in (keys_path(ROOM, "sess"), keys_path(ROOM), keys_path()):
        served = http.get(path, headers=user.headers, params={"version": version})
        expect(served, 200)
        assert data.encode() in served.content, served.content


def test_update_version(http: httpx.Client, user: User) -> None:
    version = create_version(http, user)
    path = f"{CS}/room_keys/version/{version}"
    new_auth = {"public_key": "rotated", "signatures": {}}
    body = {"algorithm": ALGORITHM, "auth_data": new_auth}
    assert expect(http.put(path, headers=user.headers, json=body), 200) == {}
    assert version_info(http, user, version)["auth_data"] == new_auth
    # The body may repeat the version; it must be the path's.
    same = {**body, "version": version}
    assert expect(http.put(path, headers=user.headers, json=same), 200) == {}
    other = {**body, "version": str(int(version) + 1)}
    expect(http.put(path, headers=user.headers, json=other), 400, "M_INVALID_PARAM")
    # Only auth_data may change: the algorithm must be the backup's.
    changed = {"algorithm": "org.example.other", "auth_data": new_auth}
    expect(http.put(path, headers=user.headers, json=changed), 400, "M_INVALID_PARAM")
    # Unknown versions.
    for unknown in ("999999", "abc", "0" + version):
        response = http.put(f"{CS}/room_keys/version/{unknown}", headers=user.headers, json=body)
        expect(response, 404, "M_NOT_FOUND")
    assert version_info(http, user, version)["auth_data"] == new_auth


def test_delete_version(http: httpx.Client, user: User) -> None:
    first = create_version(http, user)
    put_key(http, user, first, "s1", key(marker="first"))
    second = create_version(http, user)
    put_key(http, user, second, "s2", key(marker="second"))

    path = f"{CS}/room_keys/version/{second}"
    assert expect(http.delete(path, headers=user.headers), 200) == {}
    expect(http.get(path, headers=user.headers), 404, "M_NOT_FOUND")
    get_keys(http, user, second, status=404, errcode="M_NOT_FOUND")
    delete_keys(http, user, second, status=404, errcode="M_NOT_FOUND")
    # Deleting it again succeeds; a version that never existed is 404.
    assert expect(http.delete(path, headers=user.headers), 200) == {}
    expect(http.delete(f"{CS}/room_keys/version/999999", headers=user.headers), 404, "M_NOT_FOUND")
    expect(http.delete(f"{CS}/room_keys/version/nope", headers=user.headers), 404, "M_NOT_FOUND")
    # The newest version left is the current one again.
    assert version_info(http, user)["version"] == first
    assert get_keys(http, user, first, ROOM, "s1")["session_data"] == session_data("first")
    # Version numbers are never reused, and a new version starts empty.
    third = create_version(http, user)
    assert int(third) > int(second)
    assert get_keys(http, user, third) == {"rooms": {}}
    assert version_info(http, user)["count"] == 0
    expect(http.delete(f"{CS}/room_keys/version/{first}", headers=user.headers), 200)
    expect(http.delete(f"{CS}/room_keys/version/{third}", headers=user.headers), 200)
    expect(http.get(f"{CS}/room_keys/version", headers=user.headers), 404, "M_NOT_FOUND")


# -- keys ----------------------------------------------------------------------------------


def test_store_and_read_keys(http: httpx.Client, user: User) -> None:
    version = create_version(http, user)
    etag, count = update_response(put_key(http, user, version, "s1", key(1, 0, True, "a")))
    assert count == 1
    room2 = "!other:localhost"
    etag2, count = update_response(
        put_keys(
            http,
            user,
            version,
            {ROOM: {"s2": key(2, 1, False, "b")}, room2: {"s3": key(0, 0, True, "c")}},
        )
    )
    assert count == 3 and etag2 != etag
    etag3, count = update_response(
        expect(
            http.put(
                keys_path(room2),
                headers=user.headers,
                params={"version": version},
                json={"sessions": {"s4": key(5, 5, False, "d")}},
            ),
            200,
        )
    )
    assert count == 4 and etag3 not in (etag, etag2)

    assert get_keys(http, user, version, ROOM, "s1") == key(1, 0, True, "a")
    assert get_keys(http, user, version, ROOM) == {
        "sessions": {"s1": key(1, 0, True, "a"), "s2": key(2, 1, False, "b")}
    }
    assert get_keys(http, user, version) == {
        "rooms": {
            ROOM: {"sessions": {"s1": key(1, 0, True, "a"), "s2": key(2, 1, False, "b")}},
            room2: {"sessions": {"s3": key(0, 0, True, "c"), "s4": key(5, 5, False, "d")}},
        }
    }
    info = version_info(http, user, version)
    assert (info["etag"], info["count"]) == (etag3, 4)
    # Nothing there: an unknown session is 404, an unknown room is empty sessions.
    body = get_keys(http, user, version, ROOM, "nope", status=404, errcode="M_NOT_FOUND")
    assert body["error"]
    assert get_keys(http, user, version, "!empty:localhost") == {"sessions": {}}
    # Session IDs are base64 and may hold '/' and '+'.
    odd = "ab/c+d=="
    put_key(http, user, version, odd, key(marker="odd"))
    assert get_keys(http, user, version, ROOM, odd) == key(marker="odd")
    assert odd in get_keys(http, user, version, ROOM)["sessions"]


@pytest.mark.parametrize(
    ("stored", "uploaded", "replaced"),
    [
        # is_verified true beats false, whatever the indexes.
        ((0, 0, False), (10, 5, True), True),
        ((10, 5, True), (0, 0, False), False),
        # Same verification: the lower first_message_index wins, whatever the count.
        ((5, 0, False), (3, 9, False), True),
        ((3, 0, True), (5, 0, True), False),
        # Same verification and index: the lower forwarded_count wins.
        ((3, 2, True), (3, 1, True), True),
        ((3, 1, False), (3, 2, False), False),
        # Equal on all three: the stored key stays.
        ((3, 1, True), (3, 1, True), False),
    ],
)
def test_replacement_rule(
    http: httpx.Client,
    user: User,
    stored: tuple[int, int, bool],
    uploaded: tuple[int, int, bool],
    replaced: bool,
) -> None:
    version = create_version(http, user)
    before = key(*stored, marker="stored")
    after = key(*uploaded, marker="uploaded")
    etag, count = update_response(put_key(http, user, version, "s", before))
    # Through each PUT variant: the single session, the room and all rooms.
    uploads = [
        lambda: put_key(http, user, version, "s", after),
        lambda: expect(
            http.put(
                keys_path(ROOM),
                headers=user.headers,
                params={"version": version},
                json={"sessions": {"s": after}},
            ),
            200,
        ),
        lambda: put_keys(http, user, version, {ROOM: {"s": after}}),
    ]
    for upload in uploads:
        if replaced:  # start from the stored key again
            delete_keys(http, user, version, ROOM, "s")
            etag, count = update_response(put_key(http, user, version, "s", before))
        new_etag, new_count = update_response(upload())
        assert new_count == count == 1
        assert (new_etag != etag) is replaced
        expected = after if replaced else before
        assert get_keys(http, user, version, ROOM, "s") == expected
        info = version_info(http, user, version)
        assert (info["etag"], info["count"]) == (new_etag, 1)


def test_etag_and_count_follow_changes(http: httpx.Client, user: User) -> None:
    version = create_version(http, user)
    seen = {version_info(http, user)["etag"]}

    def changed(body: Any, count: int) -> None:
        etag, got = update_response(body)
        assert got == count and etag not in seen
        seen.add(etag)
        info = version_info(http, user, version)
        assert (info["etag"], info["count"]) == (etag, count)

    changed(put_keys(http, user, version, {ROOM: {f"s{n}": key(5) for n in range(3)}}), 3)
    # Re-uploading the same keys changes nothing; a worse one neither.
    last = version_info(http, user)["etag"]
    etag, count = update_response(
        put_keys(http, user, version, {ROOM: {f"s{n}": key(5) for n in range(3)}})
    )
    assert (etag, count) == (last, 3)
    etag, count = update_response(put_key(http, user, version, "s0", key(6)))
    assert (etag, count) == (last, 3)
    # A better key changes the etag, not the count; a new one both.
    changed(put_key(http, user, version, "s0", key(4)), 3)
    changed(put_key(http, user, version, "s9", key(4), room_id="!b:localhost"), 4)
    # An empty upload changes nothing.
    etag, count = update_response(put_keys(http, user, version, {}))
    assert count == 4 and etag == version_info(http, user)["etag"]
    # Deletes: one session, a room, all. Deleting nothing changes nothing.
    changed(delete_keys(http, user, version, ROOM, "s0"), 3)
    last = version_info(http, user)["etag"]
    etag, count = update_response(delete_keys(http, user, version, ROOM, "s0"))
    assert (etag, count) == (last, 3)
    changed(delete_keys(http, user, version, ROOM), 1)
    assert get_keys(http, user, version, ROOM) == {"sessions": {}}
    changed(delete_keys(http, user, version), 0)
    assert get_keys(http, user, version) == {"rooms": {}}
    last = version_info(http, user)["etag"]
    etag, count = update_response(delete_keys(http, user, version))
    assert (etag, count) == (last, 0)


def test_wrong_version(http: httpx.Client, user: User) -> None:
    old = create_version(http, user)
    put_key(http, user, old, "s", key(marker="old"))
    current = create_version(http, user)
    # Writing anywhere but the current version: 403 naming the current one.
    for version in (old, "999999", "garbage"):
        body = put_key(http, user, version, "s", key(marker="x"), status=403)
        assert body["errcode"] == "M_WRONG_ROOM_KEYS_VERSION"
        assert body["current_version"] == current
        body = put_keys(http, user, version, {ROOM: {"s": key()}}, status=403)
        assert body["errcode"] == "M_WRONG_ROOM_KEYS_VERSION"
        assert body["current_version"] == current
    # Reading and deleting work in any existing version; unknown ones are 404.
    assert get_keys(http, user, old, ROOM, "s") == key(marker="old")
    get_keys(http, user, current, ROOM, "s", status=404, errcode="M_NOT_FOUND")
    get_keys(http, user, "999999", status=404, errcode="M_NOT_FOUND")
    delete_keys(http, user, "999999", status=404, errcode="M_NOT_FOUND")
    assert update_response(delete_keys(http, user, old, ROOM, "s"))[1] == 0
    # The version parameter is required.
    for method in ("GET", "PUT", "DELETE"):
        response = http.request(method, keys_path(), headers=user.headers, json={"rooms": {}})
        expect(response, 400, "M_MISSING_PARAM")


def test_keys_need_auth(http: httpx.Client) -> None:
    expect(http.get(f"{CS}/room_keys/version"), 401, "M_MISSING_TOKEN")
    expect(http.put(keys_path(), params={"version": "1"}, json={"rooms": {}}), 401)


# -- bad input -----------------------------------------------------------------------------


def test_bad_version_bodies(http: httpx.Client, user: User) -> None:
    path = f"{CS}/room_keys/version"
    bad_json: list[Any] = [
        {"auth_data": AUTH_DATA},
        {"algorithm": ALGORITHM},
        {"algorithm": 5, "auth_data": AUTH_DATA},
        {"algorithm": ALGORITHM, "auth_data": "anopaquestring"},
        {"algorithm": ALGORITHM, "auth_data": [AUTH_DATA]},
        # The spec's algorithm needs a public_key string.
        {"algorithm": ALGORITHM, "auth_data": {"signatures": {}}},
        {"algorithm": ALGORITHM, "auth_data": {"public_key": 5}},
        [],
        None,
    ]
    for body in bad_json:
        response = http.post(path, headers=json_headers(user), content=json.dumps(body).encode())
        expect(response, 400, "M_BAD_JSON")
    expect(
        http.post(path, headers=user.headers, json={"algorithm": "", "auth_data": {}}),
        400,
        "M_INVALID_PARAM",
    )
    for content in (b"", b"{", b"not json"):
        expect(http.post(path, headers=user.headers, content=content), 400, "M_NOT_JSON")
    big = {"algorithm": ALGORITHM, "auth_data": {"public_key": "k", "pad": "x" * 70_000}}
    expect(http.post(path, headers=user.headers, json=big), 413, "M_TOO_LARGE")
    huge = {"algorithm": ALGORITHM, "auth_data": {"public_key": "k", "pad": "x" * (2 * MiB)}}
    expect(http.post(path, headers=user.headers, json=huge), 413, "M_TOO_LARGE")
    expect(http.get(path, headers=user.headers), 404, "M_NOT_FOUND")  # nothing was created
    # Other algorithms are kept opaquely (e.g. MSC3270's symmetric backups).
    version = create_version(
        http, user, {"iv": "i", "mac": "m"}, "org.matrix.msc3270.v1.aes-hmac-sha2"
    )
    assert version_info(http, user, version)["algorithm"] == "org.matrix.msc3270.v1.aes-hmac-sha2"
    bad_update = {"algorithm": ALGORITHM, "auth_data": AUTH_DATA, "version": 5}
    expect(http.put(f"{path}/{version}", headers=user.headers, json=bad_update), 400, "M_BAD_JSON")


def test_bad_key_uploads(http: httpx.Client, user: User) -> None:
    version = create_version(http, user)
    put_key(http, user, version, "keep", key(marker="keep"))
    good = key()
    bad_keys: list[Any] = [
        {**good, "first_message_index": "1"},
        {**good, "first_message_index": 1.5},
        {**good, "first_message_index": -1},
        {**good, "forwarded_count": None},
        {**good, "forwarded_count": -3},
        {**good, "is_verified": "true"},
        {**good, "is_verified": 1},
        {**good, "session_data": "opaque"},
        {**good, "session_data": ["a"]},
        {**good, "first_message_index": 2**53},
        {k: v for k, v in good.items() if k != "session_data"},
        {k: v for k, v in good.items() if k != "is_verified"},
        [good],
        None,
    ]
    for bad in bad_keys:
        put_key(http, user, version, "s", bad, status=400, errcode="M_BAD_JSON")
        put_keys(http, user, version, {ROOM: {"s": bad}}, status=400, errcode="M_BAD_JSON")
    for body in ({"rooms": []}, {"rooms": {ROOM: []}}, {"rooms": {ROOM: {}}}, {}, []):
        response = http.put(
            keys_path(), headers=user.headers, params={"version": version}, json=body
        )
        expect(response, 400, "M_BAD_JSON")
    # Room IDs and session IDs, in the path and in the body.
    put_key(
        http, user, version, "s", good, room_id="notaroom", status=400, errcode="M_INVALID_PARAM"
    )
    put_key(http, user, version, "x" * 300, good, status=400, errcode="M_INVALID_PARAM")
    put_keys(http, user, version, {"room": {"s": good}}, status=400, errcode="M_INVALID_PARAM")
    put_keys(http, user, version, {ROOM: {"": good}}, status=400, errcode="M_INVALID_PARAM")
    put_keys(
        http, user, version, {"!" + "r" * 300: {"s": good}}, status=400, errcode="M_INVALID_PARAM"
    )
    get_keys(http, user, version, "notaroom", status=400, errcode="M_INVALID_PARAM")
    delete_keys(http, user, version, "notaroom", status=400, errcode="M_INVALID_PARAM")
    # Too big: one session_data, and bodies over the limits.
    big = {**good, "session_data": {"ciphertext": "x" * 70_000}}
    put_key(http, user, version, "s", big, status=413, errcode="M_TOO_LARGE")
    huge = {**good, "session_data": {"ciphertext": "x" * (2 * MiB)}}
    put_key(http, user, version, "s", huge, status=413, errcode="M_TOO_LARGE")
    for content in (b"", b"{", b"\xff"):
        response = http.put(
            keys_path(), headers=user.headers, params={"version": version}, content=content
        )
        expect(response, 400, "M_NOT_JSON")
    # One bad key refuses the whole upload: nothing changed.
    mixed = {ROOM: {"new": good, "bad": {**good, "is_verified": "no"}}}
    put_keys(http, user, version, mixed, status=400, errcode="M_BAD_JSON")
    assert get_keys(http, user, version) == {
        "rooms": {ROOM: {"sessions": {"keep": key(marker="keep")}}}
    }
    assert version_info(http, user)["count"] == 1


HOSTILE_BODIES: list[bytes] = [
    b"",
    b"null",
    b"true",
    b"-1e999",
    b'"text"',
    b"[]",
    b"{}",
    b"[" * 50_000 + b"]" * 50_000,
    b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    b'{"rooms": {"!r:x": {"sessions": {"s": {"session_data": '
    + b"[" * 20_000
    + b"]" * 20_000
    + b"}}}}}",
    b"\xff\xfe\x00{",
    b'{"rooms": {"!r:x": {"sessions": {"s": {"first_message_index": 1e400}}}}}',
    b'{"first_message_index": 99999999999999999999999, "forwarded_count": 0,'
    b' "is_verified": true, "session_data": {}}',
    b'{"algorithm": "\\ud800", "auth_data": {"public_key": "\\udfff"}}',
]


def test_hostile_bodies_never_500(http: httpx.Client, user: User) -> None:
    version = create_version(http, user)
    targets = [
        ("POST", f"{CS}/room_keys/version"),
        ("PUT", f"{CS}/room_keys/version/{version}"),
        ("PUT", keys_path()),
        ("PUT", keys_path(ROOM)),
        ("PUT", keys_path(ROOM, "s")),
    ]
    for method, path in targets:
        for body in HOSTILE_BODIES:
            response = http.request(
                method,
                path,
                headers=json_headers(user),
                params={"version": version},
                content=body,
            )
            assert 400 <= response.status_code < 500, (path, body[:40], response.text)
            assert response.json()["errcode"].startswith("M_")
    assert version_info(http, user)["count"] == 0


# -- big uploads and races -------------------------------------------------------------------


def test_upload_5000_sessions_in_one_request(http: httpx.Client, user: User) -> None:
    version = create_version(http, user)
    rooms = {
        f"!room{r}:localhost": {
            f"session-{r}-{s}-{'x' * 40}": {
                **key(s % 7, s % 3, s % 2 == 0),
                "session_data": {
                    "ephemeral": "e" * 43,
                    "ciphertext": f"{r}.{s}." + "c" * 250,
                    "mac": "m" * 11,
                },
            }
            for s in range(100)
        }
        for r in range(50)
    }
    body = json.dumps({"rooms": {room: {"sessions": s} for room, s in rooms.items()}})
    assert len(body) > MiB  # over the general body limit: key uploads have their own
    started = time.monotonic()
    etag, count = update_response(
        expect(
            http.put(
                keys_path(),
                headers={**user.headers, "Content-Type": "application/json"},
                params={"version": version},
                content=body.encode(),
                timeout=120,
            ),
            200,
        )
    )
    elapsed = time.monotonic() - started
    assert count == 5000
    assert elapsed < 30, f"5,000-session upload took {elapsed:.1f}s"
    assert get_keys(http, user, version) == {
        "rooms": {room: {"sessions": sessions} for room, sessions in rooms.items()}
    }
    # The same upload again changes nothing.
    response = http.put(
        keys_path(),
        headers={**user.headers, "Content-Type": "application/json"},
        params={"version": version},
        content=body.encode(),
        timeout=120,
    )
    assert update_response(expect(response, 200)) == (etag, 5000)


def test_key_upload_over_its_limit_is_413(http: httpx.Client, user: User) -> None:
    version = create_version(http, user)
    padding = "c" * 60_000
    sessions = {f"s{n}": {**key(), "session_data": {"ciphertext": padding}} for n in range(300)}
    body = json.dumps({"rooms": {ROOM: {"sessions": sessions}}}).encode()
    assert len(body) > 16 * MiB
    response = http.put(
        keys_path(),
        headers={**user.headers, "Content-Type": "application/json"},
        params={"version": version},
        content=body,
        timeout=120,
    )
    expect(response, 413, "M_TOO_LARGE")
    assert version_info(http, user)["count"] == 0


def race(server: Server, user: User, version: str, session_id: str, uploads: list[Any]) -> None:
    """Upload every key of `uploads` to one session at the same moment, one client each."""
    barrier = threading.Barrier(len(uploads))
    errors: list[BaseException] = []

    def upload(n: int, data: Any) -> None:
        try:
            with server.client() as client:
                barrier.wait(timeout=30)
                if n % 2:  # half through the bulk endpoint
                    put_keys(client, user, version, {ROOM: {session_id: data}})
                else:
                    put_key(client, user, version, session_id, data)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=item) for item in enumerate(uploads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


def test_racing_uploads_keep_the_best_key(server: Server, http: httpx.Client, user: User) -> None:
    version = create_version(http, user)
    # Every combination of quality, uploaded at once, in three different orders.
    candidates = [
        key(index, forwarded, verified, f"{index}-{forwarded}-{verified}")
        for verified in (False, True)
        for index in (9, 4, 0)
        for forwarded in (3, 1, 0)
    ]
    best = key(0, 0, True, "0-0-True")
    for round_ in range(3):
        session_id = f"race-{round_}"
        order = candidates[::-1] if round_ == 1 else candidates[round_:] + candidates[:round_]
        race(server, user, version, session_id, order)
        assert get_keys(http, user, version, ROOM, session_id) == best
    assert version_info(http, user)["count"] == 3


# -- secret storage account data -------------------------------------------------------------


def test_secret_storage_account_data(http: httpx.Client, user: User) -> None:
    """The global account data SDKs use for secret storage (SSSS) and cross-signing /
    key-backup secrets round-trip unchanged through /user/{userId}/account_data/{type}."""
    key_id = "abcdefghijklmnop"
    encrypted = {
        key_id: {"iv": "gH2iNpiETFhApvW6/FFEJQ", "ciphertext": "JnSUZ7qMj", "mac": "QfW2n9xd"}
    }
    contents: dict[str, Any] = {
        "m.secret_storage.default_key": {"key": key_id},
        f"m.secret_storage.key.{key_id}": {
            "name": "Recovery key",
            "algorithm": "m.secret_storage.v1.aes-hmac-sha2",
            "passphrase": {
                "algorithm": "m.pbkdf2",
                "salt": "MxaHNgyjn1J2O1y6L1yvP6JTHlvUaOce",
                "iterations": 500000,
                "bits": 256,
            },
            "iv": "jpVA/YXtdF5C0tqNaEbMZw",
            "mac": "y3B7gSr6j4ZuNR7h8nQ2A6S8pLLZ+WqKeUbmQ/7hx1w",
        },
        "m.cross_signing.master": {"encrypted": encrypted},
        "m.cross_signing.self_signing": {"encrypted": encrypted},
        "m.cross_signing.user_signing": {"encrypted": encrypted},
        "m.megolm_backup.v1": {"encrypted": encrypted},
    }
    user_path = f"{CS}/user/{quote(user.user_id, safe='')}/account_data"
    for type_ in contents:
        path = f"{user_path}/{quote(type_, safe='')}"
        expect(http.get(path, headers=user.headers), 404, "M_NOT_FOUND")
    for type_, content in contents.items():
        path = f"{user_path}/{quote(type_, safe='')}"
        assert expect(http.put(path, headers=user.headers, json=content), 200) == {}
    for type_, content in contents.items():
        path = f"{user_path}/{quote(type_, safe='')}"
        assert expect(http.get(path, headers=user.headers), 200) == content
    # A new default key replaces the old one.
    default = f"{user_path}/m.secret_storage.default_key"
    expect(http.put(default, headers=user.headers, json={"key": "other"}), 200)
    assert expect(http.get(default, headers=user.headers), 200) == {"key": "other"}
    # Nobody else reads them.
    other = register_user(http)
    path = f"{user_path}/m.megolm_backup.v1"
    expect(http.get(path, headers=other.headers), 403, "M_FORBIDDEN")
    # They reach the user's other devices through /sync.
    synced = expect(
        http.get(f"{CS}/sync", headers=user.headers, params={"timeout": "0"}, timeout=60), 200
    )
    by_type = {e["type"]: e["content"] for e in synced.get("account_data", {}).get("events", [])}
    assert by_type["m.megolm_backup.v1"] == contents["m.megolm_backup.v1"]
    assert by_type["m.secret_storage.default_key"] == {"key": "other"}

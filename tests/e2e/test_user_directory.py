"""User directory search against the real server: who is found, matching, ranking,
live updates, deactivation, limits, errors and `[user_directory] search_all_users`.

https://spec.matrix.org/latest/client-server-api/#user-directory
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from nio import AsyncClient, AsyncClientConfig, RegisterResponse, RoomCreateResponse

from tests.e2e.conftest import ServerFactory
from tests.e2e.harness import Server
from tests.e2e.matrix import CS, PASSWORD, User, expect, password_auth, register_user, unique

SEARCH = f"{CS}/user_directory/search"
CONFIG = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, request_timeout=30)


def marker() -> str:
    """A word no other test's users have (tests share one server)."""
    return "zq" + secrets.token_hex(4)


def search(http: httpx.Client, user: User, term: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = expect(
        http.post(SEARCH, headers=user.headers, json={"search_term": term, **extra}), 200
    )
    assert set(body) == {"results", "limited"}
    return body


def found(http: httpx.Client, user: User, term: str, **extra: Any) -> list[str]:
    return [result["user_id"] for result in search(http, user, term, **extra)["results"]]


def set_displayname(http: httpx.Client, user: User, name: str) -> None:
    path = f"{CS}/profile/{quote(user.user_id)}/displayname"
    expect(http.put(path, headers=user.headers, json={"displayname": name}), 200)


def named_user(http: httpx.Client, name: str, prefix: str = "dir") -> User:
    user = register_user(http, prefix)
    set_displayname(http, user, name)
    return user


def create_room(http: httpx.Client, user: User, **body: Any) -> str:
    created = expect(http.post(f"{CS}/createRoom", headers=user.headers, json=body), 200)
    room_id: str = created["room_id"]
    return room_id


def join(http: httpx.Client, user: User, room_id: str) -> None:
    expect(http.post(f"{CS}/join/{quote(room_id)}", headers=user.headers, json={}), 200)


def leave(http: httpx.Client, user: User, room_id: str) -> None:
    expect(http.post(f"{CS}/rooms/{quote(room_id)}/leave", headers=user.headers, json={}), 200)


def invite(http: httpx.Client, user: User, room_id: str, invitee: User) -> None:
    path = f"{CS}/rooms/{quote(room_id)}/invite"
    expect(http.post(path, headers=user.headers, json={"user_id": invitee.user_id}), 200)


def test_who_can_be_found(http: httpx.Client) -> None:
    word = marker()
    searcher = named_user(http, f"Searcher {word}")
    friend = named_user(http, f"Friend {word}")
    stranger = named_user(http, f"Stranger {word}")
    public = named_user(http, f"Public {word}")
    published = named_user(http, f"Published {word}")
    readable = named_user(http, f"Readable {word}")
    invited = named_user(http, f"Invited {word}")

    # The stranger is alone in a private room: never found.
    create_room(http, stranger, preset="private_chat")
    # Members of a room with a public join rule are found by anyone.
    create_room(http, public, preset="public_chat")
    # So are members of a room published in the room directory (join rule invite)...
    create_room(http, published, preset="private_chat", visibility="public")
    # ...and of a world-readable room (the spec's third MUST).
    create_room(
        http,
        readable,
        preset="private_chat",
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "world_readable"},
            }
        ],
    )
    # Being invited to a private room shares nothing yet.
    private = create_room(http, searcher, preset="private_chat")
    invite(http, searcher, private, invited)
    invite(http, searcher, private, friend)

    expected_public = {public.user_id, published.user_id, readable.user_id}
    # The searcher is joined to the private room, so finds themself (Synapse does too).
    assert set(found(http, searcher, word)) == expected_public | {searcher.user_id}

    # Joining the private room shares it: the friend becomes findable, at once.
    join(http, friend, private)
    assert set(found(http, searcher, word)) == expected_public | {
        searcher.user_id,
        friend.user_id,
    }
    # The friend finds the searcher back; the stranger only the public ones (and self).
    assert searcher.user_id in found(http, friend, word)
    assert set(found(http, stranger, word)) == expected_public | {stranger.user_id}
    # Leaving stops it.
    leave(http, friend, private)
    assert friend.user_id not in found(http, searcher, word)
    assert invited.user_id not in found(http, searcher, word)


def test_matching_is_case_insensitive_word_prefix(http: httpx.Client) -> None:
    word = marker()
    room_owner = register_user(http)
    room_id = create_room(http, room_owner, preset="public_chat")
    alice = register_user(http, f"alice.{word}")
    set_displayname(http, alice, f"Alice Wonder-{word.upper()}")
    zoe = named_user(http, f"Zoë Ærøskøbing {word}")
    for member in (alice, zoe):
        join(http, member, room_id)
    me = register_user(http)

    # A prefix of any word of the display name, in any case.
    assert set(found(http, me, word[:7].upper())) == {alice.user_id, zoe.user_id}
    assert found(http, me, f"wonder {word}") == [alice.user_id]
    assert found(http, me, f"WON {word[:4]}") == [alice.user_id]
    # Diacritics fold (ë -> e) and non-ASCII letters fold case.
    assert found(http, me, f"zoe {word}") == [zoe.user_id]
    assert found(http, me, f"ÆRØ {word}") == [zoe.user_id]
    # The localpart matches too, by any of its words, and a full user ID finds its user.
    assert found(http, me, f"alice.{word}") == [alice.user_id]
    assert found(http, me, alice.user_id) == [alice.user_id]
    # Every word must match; a word in the middle of a word does not.
    assert found(http, me, f"alice nobody {word}") == []
    assert found(http, me, word[2:]) == []
    # Terms without a letter or digit find nobody rather than everybody.
    assert search(http, me, "") == {"results": [], "limited": False}
    assert search(http, me, " @ : ! ") == {"results": [], "limited": False}
    # FTS5 syntax in the term is plain text, never a query.
    assert found(http, me, f'"{word}" OR NOT * ^ (') == []
    assert set(found(http, me, f'{word}"')) == {alice.user_id, zoe.user_id}

    results = search(http, me, f"alice {word}")["results"]
    assert results == [{"user_id": alice.user_id, "display_name": f"Alice Wonder-{word.upper()}"}]


def test_ranking_exact_then_prefix_then_later_word(http: httpx.Client) -> None:
    word = marker()
    owner = register_user(http)
    room_id = create_room(http, owner, preset="public_chat")
    later = named_user(http, f"Jones {word}")
    prefix = named_user(http, f"{word}son Jones")
    exact = named_user(http, word)
    # Registration sets the localpart as display name; without one (nor an avatar) a
    # user comes after those in the same rank with one.
    bare = register_user(http, f"{word}-bare")
    path = f"{CS}/profile/{quote(bare.user_id)}/displayname"
    expect(http.delete(path, headers=bare.headers), 200)
    for member in (later, prefix, exact, bare):
        join(http, member, room_id)
    me = register_user(http)

    assert found(http, me, word) == [exact.user_id, prefix.user_id, bare.user_id, later.user_id]
    # Case does not change the ranking.
    assert found(http, me, word.upper())[:2] == [exact.user_id, prefix.user_id]


def test_profile_changes_are_searchable_at_once(http: httpx.Client) -> None:
    old, new = marker(), marker()
    owner = register_user(http)
    room_id = create_room(http, owner, preset="public_chat")
    user = named_user(http, f"Before {old}")
    join(http, user, room_id)
    me = register_user(http)
    assert found(http, me, old) == [user.user_id]

    set_displayname(http, user, f"After {new}")
    assert found(http, me, old) == []
    assert search(http, me, new)["results"] == [
        {"user_id": user.user_id, "display_name": f"After {new}"}
    ]

    avatar = f"mxc://localhost/{new}"
    path = f"{CS}/profile/{quote(user.user_id)}/avatar_url"
    expect(http.put(path, headers=user.headers, json={"avatar_url": avatar}), 200)
    assert search(http, me, new)["results"] == [
        {"user_id": user.user_id, "display_name": f"After {new}", "avatar_url": avatar}
    ]

    path = f"{CS}/profile/{quote(user.user_id)}/displayname"
    expect(http.delete(path, headers=user.headers), 200)
    assert found(http, me, new) == []
    # Still found by localpart, now without a display name.
    assert search(http, me, user.localpart)["results"] == [
        {"user_id": user.user_id, "avatar_url": avatar}
    ]


def test_deactivated_users_never_appear(http: httpx.Client) -> None:
    word = marker()
    me = named_user(http, f"Me {word}")
    gone = named_user(http, f"Gone {word}")
    room_id = create_room(http, me, preset="public_chat")
    join(http, gone, room_id)
    assert set(found(http, me, word)) == {me.user_id, gone.user_id}

    body = {"auth": password_auth(gone), "erase": False}
    expect(http.post(f"{CS}/account/deactivate", headers=gone.headers, json=body), 200)
    assert found(http, me, word) == [me.user_id]
    assert found(http, me, gone.localpart) == []


def test_limit_and_limited(http: httpx.Client) -> None:
    word = marker()
    owner = named_user(http, f"Owner {word}")
    room_id = create_room(http, owner, preset="public_chat")
    for index in range(11):
        join(http, named_user(http, f"Member{index} {word}"), room_id)

    everyone = search(http, owner, word, limit=50)
    assert len(everyone["results"]) == 12 and everyone["limited"] is False
    by_default = search(http, owner, word)
    assert len(by_default["results"]) == 10 and by_default["limited"] is True
    two = search(http, owner, word, limit=2)
    assert len(two["results"]) == 2 and two["limited"] is True
    assert search(http, owner, word, limit=12)["limited"] is False
    assert search(http, owner, word, limit=0) == {"results": [], "limited": True}
    # Larger limits are capped at 50, not refused.
    assert len(search(http, owner, word, limit=10_000)["results"]) == 12


def test_bad_requests(http: httpx.Client, user: User) -> None:
    expect(http.post(SEARCH, json={"search_term": "x"}), 401, "M_MISSING_TOKEN")
    expect(http.post(SEARCH, headers=user.headers, json={}), 400, "M_MISSING_PARAM")
    expect(http.post(SEARCH, headers=user.headers, json={"limit": 5}), 400, "M_MISSING_PARAM")
    for body in (
        {"search_term": 5},
        {"search_term": None},
        {"search_term": ["a"]},
        {"search_term": "a", "limit": "10"},
        {"search_term": "a", "limit": 1.5},
        {"search_term": "a", "limit": True},
        ["search_term"],
        "a",
    ):
        expect(http.post(SEARCH, headers=user.headers, json=body), 400, "M_BAD_JSON")
    response = http.post(
        SEARCH,
        headers={**user.headers, "Content-Type": "application/json"},
        content=b'{"search_term": ',
    )
    expect(response, 400, "M_NOT_JSON")
    expect(http.post(SEARCH, headers=user.headers), 400, "M_NOT_JSON")
    long_term = {"search_term": "a" * 513}
    expect(http.post(SEARCH, headers=user.headers, json=long_term), 400, "M_INVALID_PARAM")
    expect(http.get(SEARCH, headers=user.headers), 405, "M_UNRECOGNIZED")


def test_search_all_users_option(server_factory: ServerFactory, http: httpx.Client) -> None:
    # The shared server (default: off) does not find a user who shares no room.
    word = marker()
    loner = named_user(http, f"Loner {word}")
    me = register_user(http)
    assert found(http, me, word) == []

    everyone = server_factory({"user_directory": {"search_all_users": True}})
    with everyone.client() as client:
        loner = named_user(client, f"Loner {word}")
        gone = named_user(client, f"Gone {word}")
        me = register_user(client)
        assert set(found(client, me, word)) == {loner.user_id, gone.user_id}
        body = {"auth": password_auth(gone)}
        expect(client.post(f"{CS}/account/deactivate", headers=gone.headers, json=body), 200)
        assert found(client, me, word) == [loner.user_id]
        assert found(client, me, loner.localpart) == [loner.user_id]


# -- matrix-nio: it has no user directory method; its transport sends the search. --


@pytest.fixture
async def nio_client(server: Server) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(server.url, config=CONFIG)
    try:
        yield client
    finally:
        await client.close()


async def test_nio_users_find_each_other(nio_client: AsyncClient, server: Server) -> None:
    word = marker()
    registered = await nio_client.register(unique("nio-dir"), PASSWORD, device_name="nio")
    assert isinstance(registered, RegisterResponse), registered
    await nio_client.set_displayname(f"First {word}")
    created = await nio_client.room_create(name="directory", invite=[])
    assert isinstance(created, RoomCreateResponse), created

    other = AsyncClient(server.url, config=CONFIG)
    try:
        theirs = await other.register(unique("nio-dir"), PASSWORD, device_name="nio")
        assert isinstance(theirs, RegisterResponse), theirs
        await other.set_displayname(f"Other {word}")

        async def nio_search(client: AsyncClient, term: str) -> Any:
            headers = {
                "Authorization": f"Bearer {client.access_token}",
                "Content-Type": "application/json",
            }
            response = await client.send("POST", SEARCH, json.dumps({"search_term": term}), headers)
            async with response:
                assert response.status == 200
                return await response.json()

        # A private room with no one else: the other user is not found...
        body = await nio_search(nio_client, word)
        assert body == {
            "results": [{"user_id": nio_client.user_id, "display_name": f"First {word}"}],
            "limited": False,
        }
        # ...until invited and joined.
        await nio_client.room_invite(created.room_id, other.user_id)
        await other.join(created.room_id)
        body = await nio_search(nio_client, f"other {word}")
        assert body == {
            "results": [{"user_id": other.user_id, "display_name": f"Other {word}"}],
            "limited": False,
        }
        body = await nio_search(other, f"first {word}")
        assert [r["user_id"] for r in body["results"]] == [nio_client.user_id]
    finally:
        await other.close()

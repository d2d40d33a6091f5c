"""Adding an email address to an account, listing and deleting it, end to end.

The client path of the spec: requestToken, the token submitted to `submit_url` (JSON,
as a client that asks the user to paste the token would), then /account/3pid/add
through user-interactive auth with the account's password.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.e2e.conftest import ServerFactory
from tests.e2e.harness import Server
from tests.e2e.matrix import CS, PASSWORD, User, expect, password_auth, register_user
from tests.e2e.test_email_registration import email_overrides, new_address, request_token
from tests.unit.threepid.smtp_sink import SMTPSink, shared_sink


@pytest.fixture(scope="module")
def sink() -> SMTPSink:
    return shared_sink()


@pytest.fixture(scope="module")
def email_server(server_factory: ServerFactory, sink: SMTPSink) -> Server:
    return server_factory(email_overrides(sink))


@pytest.fixture(scope="module")
def client(email_server: Server) -> Iterator[httpx.Client]:
    with email_server.client() as http:
        yield http


def submit_from_mail(http: httpx.Client, sink: SMTPSink, address: str, skip: int = 0) -> dict:
    link = sink.wait_for(address, skip=skip).link()
    query = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
    path = urlsplit(link).path
    assert expect(http.post(path, json=query), 200) == {"success": True}
    return query


def add_address(http: httpx.Client, sink: SMTPSink, user: User, address: str) -> None:
    secret = secrets.token_hex(8)
    earlier = sink.count(address.lower())
    sid = request_token(http, "account/3pid", address, secret)["sid"]
    submit_from_mail(http, sink, address.lower(), skip=earlier)
    body = {"sid": sid, "client_secret": secret}
    state = expect(http.post(f"{CS}/account/3pid/add", json=body, headers=user.headers), 401)
    assert state["flows"] == [{"stages": ["m.login.password"]}]
    auth = password_auth(user, state["session"])
    expect(
        http.post(f"{CS}/account/3pid/add", json={**body, "auth": auth}, headers=user.headers),
        200,
    )


def list_addresses(http: httpx.Client, user: User) -> list[str]:
    body = expect(http.get(f"{CS}/account/3pid", headers=user.headers), 200)
    return [t["address"] for t in body["threepids"]]


def test_add_list_login_and_delete_an_email_address(client: httpx.Client, sink: SMTPSink) -> None:
    user = register_user(client)
    assert list_addresses(client, user) == []
    address = new_address()
    add_address(client, sink, user, address)
    assert list_addresses(client, user) == [address.lower()]
    mail = sink.wait_for(address.lower())
    assert mail.subject == "Add this email address to your account on localhost"

    login = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": address},
        "password": PASSWORD,
    }
    assert expect(client.post(f"{CS}/login", json=login), 200)["user_id"] == user.user_id
    # The legacy top-level medium/address fields name the account too.
    legacy = {"type": "m.login.password", "medium": "email", "address": address}
    legacy["password"] = PASSWORD
    assert expect(client.post(f"{CS}/login", json=legacy), 200)["user_id"] == user.user_id

    deleted = expect(
        client.post(
            f"{CS}/account/3pid/delete",
            json={"medium": "email", "address": address},
            headers=user.headers,
        ),
        200,
    )
    assert deleted == {"id_server_unbind_result": "no-support"}
    assert list_addresses(client, user) == []
    expect(client.post(f"{CS}/login", json=login), 403, "M_FORBIDDEN")
    expect(
        client.post(
            f"{CS}/account/3pid/delete",
            json={"medium": "email", "address": address},
            headers=user.headers,
        ),
        400,
        "M_THREEPID_NOT_FOUND",
    )


def test_an_address_belongs_to_one_account(client: httpx.Client, sink: SMTPSink) -> None:
    alice, bob = register_user(client), register_user(client)
    address = new_address().lower()
    add_address(client, sink, alice, address)
    # Bob asks for the same address: same answer, but a notice instead of a link.
    secret = secrets.token_hex(8)
    sid = request_token(client, "account/3pid", address, secret)["sid"]
    notice = sink.wait_for(address, skip=1)
    assert "already belongs to an account" in notice.words
    body = {"sid": sid, "client_secret": secret}
    expect(
        client.post(f"{CS}/account/3pid/add", json=body, headers=bob.headers),
        400,
        "M_THREEPID_AUTH_FAILED",
    )
    assert list_addresses(client, bob) == []


def test_deactivation_frees_the_address(client: httpx.Client, sink: SMTPSink) -> None:
    user = register_user(client)
    address = new_address().lower()
    add_address(client, sink, user, address)
    state = expect(client.post(f"{CS}/account/deactivate", json={}, headers=user.headers), 401)
    auth = password_auth(user, state["session"])
    expect(client.post(f"{CS}/account/deactivate", json={"auth": auth}, headers=user.headers), 200)
    newcomer = register_user(client)
    add_address(client, sink, newcomer, address)
    assert list_addresses(client, newcomer) == [address]


def test_capabilities_say_3pid_changes_are_possible(client: httpx.Client) -> None:
    user = register_user(client)
    caps = expect(client.get(f"{CS}/capabilities", headers=user.headers), 200)
    assert caps["capabilities"]["m.3pid_changes"] == {"enabled": True}


def test_bind_and_unbind_answer_without_an_identity_server(client: httpx.Client) -> None:
    user = register_user(client)
    bind = {"client_secret": "abc", "id_server": "id.example.org", "id_access_token": "t"}
    bind["sid"] = "123"
    expect(
        client.post(f"{CS}/account/3pid/bind", json=bind, headers=user.headers),
        400,
        "M_SERVER_NOT_TRUSTED",
    )
    expect(
        client.post(f"{CS}/account/3pid", json={"three_pid_creds": bind}, headers=user.headers),
        400,
        "M_SERVER_NOT_TRUSTED",
    )
    unbind = {"medium": "email", "address": "a@example.org", "id_server": "id.example.org"}
    assert expect(
        client.post(f"{CS}/account/3pid/unbind", json=unbind, headers=user.headers), 200
    ) == {"id_server_unbind_result": "no-support"}
    expect(client.post(f"{CS}/account/3pid/bind", json={}, headers=user.headers), 400, "M_BAD_JSON")
    bad = {"medium": "fax", "address": "x"}
    for path in ("unbind", "delete"):
        expect(
            client.post(f"{CS}/account/3pid/{path}", json=bad, headers=user.headers),
            400,
            "M_INVALID_PARAM",
        )
    expect(client.get(f"{CS}/account/3pid"), 401, "M_MISSING_TOKEN")


def test_phone_numbers_are_refused_clearly(client: httpx.Client) -> None:
    body = {"client_secret": "abc", "country": "GB", "phone_number": "07700900001"}
    body["send_attempt"] = 1
    for path in ("register", "account/password", "account/3pid"):
        expect(
            client.post(f"{CS}/{path}/msisdn/requestToken", json=body),
            400,
            "M_THREEPID_MEDIUM_NOT_SUPPORTED",
        )
    login = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.phone", "country": "GB", "phone": "07700900001"},
        "password": PASSWORD,
    }
    expect(client.post(f"{CS}/login", json=login), 400, "M_UNRECOGNIZED")
    login["identifier"] = {"type": "m.id.thirdparty", "medium": "msisdn", "address": "447700"}
    expect(client.post(f"{CS}/login", json=login), 400, "M_UNRECOGNIZED")

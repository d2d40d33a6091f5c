"""Push gateways through the server's outbound client (push/gateway.py) against real
local HTTP servers: the private-address guard, pinning the checked address, the redirect
rules of a POST, any port, response parsing and failures. The client's address checks in
general are tested in tests/unit/test_outbound_http.py."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from dendrite_lite.outbound_http import (
    OutboundClient,
    OutboundError,
    RequestRefused,
    is_public,
)
from dendrite_lite.push.gateway import gateway_client, gateway_policy


def only(address: str) -> OutboundClient:
    """A push client that may reach exactly this one loopback address."""
    policy = gateway_policy()
    narrowed = type(policy)(
        **{
            **{f: getattr(policy, f) for f in policy.__dataclass_fields__},
            "allowed_ranges": (ipaddress.ip_network(address),),
        }
    )
    return OutboundClient(narrowed)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("::ffff:8.8.8.8", True),
        ("127.0.0.1", False),
        ("127.1.2.3", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # shared address space
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:10.0.0.1", False),
        ("2002:7f00:1::1", False),  # 6to4 around 127.0.0.1
        ("ff02::1", False),
    ],
)
def test_is_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


Reply = Callable[[bytes, bytes], Awaitable[bytes]]


@dataclass
class LocalServer:
    host: str
    port: int = 0
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)
    reply: Reply | None = None
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/_matrix/push/v1/notify"

    async def start(self) -> LocalServer:
        self.server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        self.requests.append((head, body))
        reply = self.reply or _json_reply(b'{"rejected":[]}')
        writer.write(await reply(head, body))
        await writer.drain()
        writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def _json_reply(body: bytes, status: str = "200 OK") -> Reply:
    async def reply(head: bytes, request: bytes) -> bytes:
        return (
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    return reply


@pytest.fixture
async def servers() -> AsyncIterator[Callable[[str], Awaitable[LocalServer]]]:
    started: list[LocalServer] = []

    async def make(host: str = "127.0.0.1") -> LocalServer:
        server = await LocalServer(host).start()
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop()


async def test_private_addresses_are_refused_by_default(
    servers: Callable[[str], Awaitable[LocalServer]],
) -> None:
    gateway = await servers("127.0.0.1")
    with pytest.raises(RequestRefused):
        await gateway_client().post_json(gateway.url, b"{}")
    assert gateway.requests == []


async def test_names_resolving_to_private_addresses_are_refused() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["10.0.0.7", "::1", "169.254.169.254"]

    with pytest.raises(RequestRefused, match=r"gateway\.example"):
        await gateway_client(resolver=resolver).post_json(
            "https://gateway.example/_matrix/push/v1/notify", b"{}"
        )


async def test_allowed_private_gateway(servers: Callable[[str], Awaitable[LocalServer]]) -> None:
    gateway = await servers("127.0.0.1")
    response = await gateway_client(allow_private=True).post_json(gateway.url, b'{"n":1}')
    assert response.status == 200 and response.body == b'{"rejected":[]}'
    head, body = gateway.requests[0]
    assert body == b'{"n":1}'
    assert head.startswith(b"POST /_matrix/push/v1/notify HTTP/1.1\r\n")
    assert b"Content-Type: application/json" in head


async def test_connects_to_the_address_it_checked(
    servers: Callable[[str], Awaitable[LocalServer]],
) -> None:
    """DNS rebinding: the name is resolved once; the connection goes to the address
    that passed the check, with the name kept in the Host header, on any port."""
    gateway = await servers("127.0.0.1")
    answers = [["127.0.0.1"], ["127.0.0.3"]]

    async def resolver(host: str, port: int) -> list[str]:
        return answers.pop(0)

    client = OutboundClient(only("127.0.0.1").policy, resolver=resolver)
    url = f"http://gateway.test:{gateway.port}/_matrix/push/v1/notify?x=1"
    response = await client.post_json(url, b"{}")
    assert response.status == 200
    [head] = [h for h, _ in gateway.requests if h.startswith(b"POST")]
    assert head.startswith(b"POST /_matrix/push/v1/notify?x=1 HTTP/1.1\r\n")
    assert f"Host: gateway.test:{gateway.port}\r\n".encode() in head
    assert len(answers) == 1  # resolved once


async def test_a_name_with_any_private_address_is_refused(
    servers: Callable[[str], Awaitable[LocalServer]],
) -> None:
    gateway = await servers("127.0.0.1")

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.3", "127.0.0.1"]

    client = OutboundClient(only("127.0.0.1").policy, resolver=resolver)
    with pytest.raises(RequestRefused):
        await client.post_json(f"http://gateway.test:{gateway.port}/x", b"{}")
    assert gateway.requests == []


async def test_redirect_targets_are_checked_again(
    servers: Callable[[str], Awaitable[LocalServer]],
) -> None:
    gateway = await servers("127.0.0.1")
    hidden = await servers("127.0.0.2")

    async def redirect(head: bytes, body: bytes) -> bytes:
        return (
            "HTTP/1.1 307 Temporary Redirect\r\n"
            f"Location: {hidden.url}\r\nContent-Length: 0\r\n\r\n"
        ).encode()

    gateway.reply = redirect
    client = only("127.0.0.1")
    with pytest.raises(RequestRefused):
        await client.post_json(gateway.url, b"{}")
    assert len(gateway.requests) == 1 and hidden.requests == []
    # Where the target is allowed, the POST is repeated there with its body.
    allowed = gateway_client(allow_private=True)
    response = await allowed.post_json(gateway.url, b'{"again":true}')
    assert response.status == 200
    assert hidden.requests[0][1] == b'{"again":true}'


async def test_other_redirects_are_not_followed(
    servers: Callable[[str], Awaitable[LocalServer]],
) -> None:
    gateway = await servers("127.0.0.1")

    async def moved(head: bytes, body: bytes) -> bytes:
        return b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n"

    gateway.reply = moved
    response = await gateway_client(allow_private=True).post_json(gateway.url, b"{}")
    assert response.status == 302


async def test_chunked_and_unframed_responses(
    servers: Callable[[str], Awaitable[LocalServer]],
) -> None:
    gateway = await servers("127.0.0.1")

    async def chunked(head: bytes, body: bytes) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'5\r\n{"rej\r\n9;ext=1\r\nected":[]\r\n1\r\n}\r\n0\r\n\r\n'
        )

    gateway.reply = chunked
    client = gateway_client(allow_private=True)
    assert (await client.post_json(gateway.url, b"{}")).body == b'{"rejected":[]}'

    async def until_close(head: bytes, body: bytes) -> bytes:
        return b"HTTP/1.0 500 Internal Server Error\r\n\r\noops"

    gateway.reply = until_close
    response = await client.post_json(gateway.url, b"{}")
    assert (response.status, response.body) == (500, b"oops")


async def test_garbage_and_timeouts_are_errors(
    servers: Callable[[str], Awaitable[LocalServer]],
) -> None:
    gateway = await servers("127.0.0.1")

    async def garbage(head: bytes, body: bytes) -> bytes:
        return b"SSH-2.0-OpenSSH\r\n\r\n"

    gateway.reply = garbage
    client = gateway_client(allow_private=True, timeout_s=0.5)
    with pytest.raises(OutboundError):
        await client.post_json(gateway.url, b"{}")

    async def silent(head: bytes, body: bytes) -> bytes:
        await asyncio.sleep(5)
        return b""

    gateway.reply = silent
    with pytest.raises(OutboundError, match="no complete answer"):
        await client.post_json(gateway.url, b"{}")
    with pytest.raises(OutboundError):
        await client.post_json("http://127.0.0.1:1/_matrix/push/v1/notify", b"{}")
    with pytest.raises(OutboundError):
        await client.post_json("ftp://x/_matrix/push/v1/notify", b"{}")

"""The outbound HTTP client: the address rules, URL checks, and real requests to a real
local HTTP server on 127.0.0.2 (the only address the test policy allows) through a
resolver the test controls."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dendrite_lite.outbound_http import (
    OutboundClient,
    OutboundError,
    OutboundPolicy,
    RequestRefused,
    ResponseTooLarge,
    is_public,
    parse_target,
)

HOST = "127.0.0.2"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", self.path.split("=", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/big":
            body = b"x" * 5000
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"world"):
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        elif self.path == "/close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until close")
            self.close_connection = True
            return
        else:
            body = f"path={self.path} host={self.headers['Host']}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    httpd = ThreadingHTTPServer((HOST, 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def policy(port: int, **kwargs: object) -> OutboundPolicy:
    return OutboundPolicy.from_config(
        allowed_ranges=[f"{HOST}/32"], allowed_ports=[80, 443, port], **kwargs
    )


class Dns:
    """A resolver the test controls: name -> successive answers (the last repeats)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.answers:
            raise OutboundError(f"cannot resolve {host}")
        seq = self.answers[host]
        return seq.pop(0) if len(seq) > 1 else seq[0]


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "0.1.2.3",
        "100.64.0.1",
        "100.127.255.255",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
        "198.18.0.1",
        "::1",
        "::",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::7f00:1",
        "64:ff9b::a00:1",
        "64:ff9b:1::1",
        "2002:7f00:1::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "fec0::1",
        "ff02::1",
        "2001:db8::1",
    ],
)
def test_non_public_addresses_are_refused_by_default(address: str) -> None:
    parsed = ipaddress.ip_address(address)
    assert not is_public(parsed)
    assert not OutboundPolicy().address_allowed(parsed)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert OutboundPolicy().address_allowed(ipaddress.ip_address(address))


def test_deny_ranges_win_over_allow_ranges_and_private() -> None:
    p = OutboundPolicy.from_config(
        allowed_ranges=["10.0.0.0/8"], denied_ranges=["10.0.0.5/32", "8.8.8.0/24"]
    )
    assert p.address_allowed(ipaddress.ip_address("10.1.1.1"))
    assert not p.address_allowed(ipaddress.ip_address("10.0.0.5"))
    assert not p.address_allowed(ipaddress.ip_address("::ffff:10.0.0.5"))
    assert not p.address_allowed(ipaddress.ip_address("8.8.8.8"))
    assert OutboundPolicy(allow_private=True).address_allowed(ipaddress.ip_address("10.0.0.5"))


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://2130706433/", "127.0.0.1"),
        ("http://0177.0.0.1/", "127.0.0.1"),
        ("http://0x7f.1/", "127.0.0.1"),
        ("http://127.1/", "127.0.0.1"),
        ("http://017700000001/", "127.0.0.1"),
        ("http://[::ffff:127.0.0.1]/", "127.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ],
)
async def test_ip_literals_in_any_form_are_checked_as_the_address_they_mean(
    url: str, address: str
) -> None:
    target = parse_target(url, OutboundPolicy())
    assert target.literal is not None
    literal = target.literal
    if isinstance(literal, ipaddress.IPv6Address) and literal.ipv4_mapped:
        literal = literal.ipv4_mapped
    assert str(literal) == address
    with pytest.raises(RequestRefused, match="not a public address"):
        await OutboundClient(OutboundPolicy()).get(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("gopher://example.org/", "only http and https"),
        ("ftp://example.org/", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("http:///nohost", "no valid host"),
        ("http://exa mple.org/", "no valid host"),
        ("http://example.org:22/", "port 22 is not allowed"),
        ("http://example.org:99999/", "invalid URL"),
        ("http://user:pw@example.org/", "credentials"),
        ("http://[::1/", "invalid URL"),
        ("http://1.2.3.999/", "invalid IPv4"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(RequestRefused, match=message):
        parse_target(url, OutboundPolicy())


async def test_get_through_the_pinned_address(port: int) -> None:
    dns = Dns({"public.example": [[HOST]]})
    client = OutboundClient(policy(port), resolver=dns)
    response = await client.get(f"http://public.example:{port}/hello?x=1")
    assert response.status == 200
    assert response.body == f"path=/hello?x=1 host=public.example:{port}".encode()
    assert response.headers["content-type"] == "text/plain"


async def test_post_json_chunked_and_close_delimited_bodies(port: int) -> None:
    client = OutboundClient(policy(port))
    echoed = await client.post_json(f"http://{HOST}:{port}/echo", b'{"a": 1}')
    assert echoed.body == b'{"a": 1}'
    assert (await client.get(f"http://{HOST}:{port}/chunked")).body == b"hello world"
    assert (await client.get(f"http://{HOST}:{port}/close")).body == b"until close"


async def test_name_resolving_to_a_private_address_is_refused(port: int) -> None:
    dns = Dns({"evil.example": [["10.0.0.7"]], "loop.example": [["::1"]]})
    client = OutboundClient(policy(port), resolver=dns)
    for host in ("evil.example", "loop.example"):
        with pytest.raises(RequestRefused, match="not a public address"):
            await client.get(f"http://{host}:{port}/")


async def test_any_private_address_among_several_refuses_the_name(port: int) -> None:
    dns = Dns({"mixed.example": [[HOST, "192.168.0.1"]]})
    with pytest.raises(RequestRefused, match=r"192\.168\.0\.1"):
        await OutboundClient(policy(port), resolver=dns).get(f"http://mixed.example:{port}/")


async def test_dns_rebinding_cannot_swap_the_address_after_the_check(port: int) -> None:
    # Public (allowed) on the first lookup, private on any later one: the client
    # resolves once per hop and connects to what it checked.
    dns = Dns({"rebind.example": [[HOST], ["10.0.0.1"]]})
    response = await OutboundClient(policy(port), resolver=dns).get(
        f"http://rebind.example:{port}/x"
    )
    assert response.status == 200
    assert dns.calls == ["rebind.example"]


async def test_redirects_are_checked_again(port: int) -> None:
    client = OutboundClient(policy(port), resolver=Dns({"inside.example": [["10.0.0.1"]]}))
    base = f"http://{HOST}:{port}"
    followed = await client.get(f"{base}/redirect?to=/landed")
    assert followed.body.startswith(b"path=/landed") and followed.url == f"{base}/landed"
    for target in (
        f"http://127.0.0.1:{port}/",
        "http://169.254.169.254/",
        "http://inside.example/",
        "file:///etc/passwd",
    ):
        with pytest.raises(RequestRefused):
            await client.get(f"{base}/redirect?to={target}")


async def test_redirect_loops_stop(port: int) -> None:
    p = OutboundPolicy.from_config(
        allowed_ranges=[f"{HOST}/32"], allowed_ports=[port], max_redirects=2
    )
    url = f"http://{HOST}:{port}/redirect?to=/redirect?to=/redirect?to=/redirect?to=/x"
    with pytest.raises(OutboundError, match="more than 2 redirects"):
        await OutboundClient(p).get(url)


async def test_response_size_is_capped(port: int) -> None:
    client = OutboundClient(policy(port))
    with pytest.raises(ResponseTooLarge):
        await client.get(f"http://{HOST}:{port}/big", max_bytes=1000)
    with pytest.raises(ResponseTooLarge):
        await client.get(f"http://{HOST}:{port}/chunked", max_bytes=5)
    with pytest.raises(ResponseTooLarge):
        await client.get(f"http://{HOST}:{port}/close", max_bytes=5)


async def test_connection_failures_and_unresolvable_names_are_outbound_errors(port: int) -> None:
    client = OutboundClient(policy(port), resolver=Dns({}))
    with pytest.raises(OutboundError, match="cannot resolve"):
        await client.get(f"http://nowhere.example:{port}/")
    closed = OutboundPolicy.from_config(allowed_ranges=[f"{HOST}/32"], allowed_ports=None)
    with pytest.raises(OutboundError, match="cannot connect"):
        await OutboundClient(closed).get(f"http://{HOST}:1/")


async def test_slow_servers_time_out() -> None:
    import asyncio

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(silent, HOST, 0)
    slow_port = server.sockets[0].getsockname()[1]
    p = OutboundPolicy.from_config(
        allowed_ranges=[f"{HOST}/32"], allowed_ports=[slow_port], timeout_s=0.3
    )
    async with server:
        with pytest.raises(OutboundError, match=r"within 0\.3s"):
            await OutboundClient(p).get(f"http://{HOST}:{slow_port}/")


async def test_redirects_not_followed_come_back_as_responses(port: int) -> None:
    keep_post = OutboundPolicy.from_config(
        allowed_ranges=[f"{HOST}/32"],
        allowed_ports=[port],
        follow_redirects=frozenset({307, 308}),
    )
    response = await OutboundClient(keep_post).get(f"http://{HOST}:{port}/redirect?to=/x")
    assert response.status == 302 and response.headers["location"] == "/x"

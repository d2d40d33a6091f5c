"""The outbound HTTP client for push gateways: asyncio streams, one request per
connection, and a guard against requests into private networks.

Pusher URLs come from clients, so a request to one is a request the server makes on a
user's behalf (SSRF). Unless `[push] allow_private_gateways` is set, the client:
- resolves the host itself and refuses addresses that are not globally routable
  (loopback, private, link-local, shared, reserved, multicast, unspecified; IPv4 inside
  IPv6 is checked as IPv4);
- connects to the address it checked, not to the name again: DNS cannot answer a
  public address to the check and a private one to the connection (rebinding). TLS
  still verifies the certificate against the host name (SNI);
- follows only 307/308 redirects (a POST stays a POST), at most three, checking each
  new target the same way.

httpx is not a runtime dependency, and pinning the checked address needs control of the
connection anyway: a POST with a small JSON body and a bounded response is all a push
gateway needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

MAX_REDIRECTS = 3
MAX_RESPONSE_BYTES = 1 << 20
MAX_HEADER_BYTES = 64 * 1024
USER_AGENT = "dendrite-lite"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]


class GatewayError(Exception):
    """The request could not be made or completed (network, protocol, timeout)."""


class AddressRefused(GatewayError):
    """Every address of the gateway's host is in a private or reserved network."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


def is_public(address: IPAddress) -> bool:
    """Whether an address is globally routable (what may be pushed to by default)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return is_public(embedded)
        if address.teredo is not None:
            return all(is_public(part) for part in address.teredo)
    return address.is_global and not address.is_multicast


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise GatewayError(f"cannot resolve {host}: {exc}") from None
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str  # with the query

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def _target(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise GatewayError(f"invalid URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GatewayError(f"not an http(s) URL: {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default = 443 if parts.scheme == "https" else 80
    return _Target(parts.scheme, parts.hostname, port or default, path)


class GatewayClient:
    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout_s: float = 15.0,
        resolver: Resolver = system_resolver,
        address_allowed: Callable[[IPAddress], bool] | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.timeout_s = timeout_s
        self._resolver = resolver
        # Which addresses may be reached when private ones are not (tests narrow it).
        self._allowed = address_allowed or is_public
        self._tls = ssl.create_default_context()

    async def post_json(self, url: str, body: bytes) -> Response:
        """POST `body` as JSON to `url`, following 307/308 redirects; any status is a
        Response, a failure to get one a GatewayError."""
        try:
            async with asyncio.timeout(self.timeout_s):
                for _ in range(MAX_REDIRECTS + 1):
                    target = _target(url)
                    address = await self._address(target)
                    response, location = await self._request(target, address, body)
                    if response.status in (307, 308) and location:
                        url = urljoin(url, location)
                        continue
                    return response
        except TimeoutError:
            raise GatewayError(f"no answer within {self.timeout_s:g}s") from None
        raise GatewayError(f"more than {MAX_REDIRECTS} redirects")

    async def _address(self, target: _Target) -> str:
        """The address to connect to: the first one of the host that may be reached."""
        literal = literal_address(target.host)
        candidates = [str(literal)] if literal is not None else []
        if literal is None:
            candidates = await self._resolver(target.host, target.port)
        if self.allow_private:
            if not candidates:
                raise GatewayError(f"{target.host} has no address")
            return candidates[0]
        for candidate in candidates:
            address = literal_address(candidate)
            if address is not None and self._allowed(address):
                return candidate
        raise AddressRefused(
            f"{target.host} resolves only to private or reserved addresses "
            f"({', '.join(candidates) or 'none'}); see [push] allow_private_gateways"
        )

    async def _request(
        self, target: _Target, address: str, body: bytes
    ) -> tuple[Response, str | None]:
        tls = target.scheme == "https"
        try:
            reader, writer = await asyncio.open_connection(
                address,
                target.port,
                ssl=self._tls if tls else None,
                server_hostname=target.host if tls else None,
                limit=MAX_HEADER_BYTES,
            )
        except (OSError, ssl.SSLError) as exc:
            raise GatewayError(f"cannot connect to {target.host} ({address}): {exc}") from None
        try:
            head = (
                f"POST {target.path} HTTP/1.1\r\n"
                f"Host: {target.host_header}\r\n"
                f"User-Agent: {USER_AGENT}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
            return await _read_response(reader)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ValueError) as exc:
            raise GatewayError(f"request to {target.host} failed: {exc!r}") from None
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader) -> tuple[Response, str | None]:
    status_line = (await reader.readline()).decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise GatewayError(f"not an HTTP/1 response: {status_line[:80]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    while True:
        line = (await reader.readline()).decode("latin-1")
        if line in ("\r\n", "\n"):
            break
        if not line:
            raise GatewayError("connection closed inside the response headers")
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if length > MAX_RESPONSE_BYTES:
            raise GatewayError("response too large")
        body = await reader.readexactly(length)
    else:
        body = await reader.read(MAX_RESPONSE_BYTES + 1)
        if len(body) > MAX_RESPONSE_BYTES:
            raise GatewayError("response too large")
    return Response(status, body), headers.get("location")


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = (await reader.readline()).decode("latin-1")
        size = int(size_line.split(";", 1)[0].strip() or "x", 16)
        if size == 0:
            # Trailers, then the blank line.
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            return bytes(body)
        if len(body) + size > MAX_RESPONSE_BYTES:
            raise GatewayError("response too large")
        body += await reader.readexactly(size)
        await reader.readline()

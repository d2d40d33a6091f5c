"""The one outbound HTTP client of the server (URL previews and push gateways; federation
and OIDC are meant to move onto it), built so that a URL chosen by a user cannot be
turned against the network the server sits in (SSRF).

For every request, and again for every redirect, the client:
- accepts only http and https URLs, on the ports the policy allows, without userinfo;
- reads IPv4 literals the way resolvers do (``2130706433``, ``0177.0.0.1``, ``0x7f.1``
  all mean 127.0.0.1) and checks the address they really mean;
- resolves the host itself (the resolver is injectable, so tests control DNS) and
  refuses the request if ANY address is not allowed: loopback, RFC 1918, link-local
  (incl. 169.254.169.254, cloud metadata), CGNAT 100.64/10, 0.0.0.0/8, multicast,
  reserved and documentation ranges, IPv6 loopback/ULA/link-local/site-local, the
  deprecated IPv4-compatible ``::/96``, and IPv4 carried inside IPv6 (mapped
  ``::ffff:0:0/96``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) is judged as IPv4;
- connects to the address it checked, never to the name again, so DNS cannot answer
  a public address to the check and a private one to the connection (rebinding); TLS
  still verifies the certificate against the host name (SNI);
- caps the whole exchange in time and the response body in bytes.

A policy may allow more: explicit ``allowed_ranges`` (e.g. one LAN host) are reachable,
explicit ``denied_ranges`` never are (deny wins), ``allow_private`` lifts the default.

Plain asyncio streams and HTTP/1.1 with ``Connection: close``: pinning the checked
address needs control of the connection, and one request per connection is all these
callers need. httpx is a test dependency only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> the host's addresses as strings. Tests pass their own.
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_HEADER_BYTES = 64 * 1024
REDIRECTS = (301, 302, 303, 307, 308)


class OutboundError(Exception):
    """The request could not be made or completed. Hierarchy::

    OutboundError             network, protocol, timeout
     ├── RequestRefused       the URL or an address is not allowed (never sent)
     └── ResponseTooLarge     the body exceeded the cap
    """


class RequestRefused(OutboundError):
    pass


class ResponseTooLarge(OutboundError):
    pass


# Addresses nobody on the public internet has. Python's `is_global` covers most of
# them; listing them keeps the rule readable and independent of Python's version.
BLOCKED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # RFC 1918
        "100.64.0.0/10",  # CGNAT shared space
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata 169.254.169.254
        "172.16.0.0/12",  # RFC 1918
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # TEST-NET-1
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # RFC 1918
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/96",  # unspecified, loopback, deprecated IPv4-compatible
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, Teredo
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_6TO4 = ipaddress.IPv6Network("2002::/16")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _6TO4:
        return address.sixtofour
    return None


def is_public(address: IPAddress) -> bool:
    """Whether an address is globally reachable (the default rule)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public(inner)
    if any(address in net for net in BLOCKED_NETWORKS if net.version == address.version):
        return False
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class OutboundPolicy:
    allow_private: bool = False
    allowed_ranges: tuple[IPNetwork, ...] = ()
    denied_ranges: tuple[IPNetwork, ...] = ()
    # None: any port.
    allowed_ports: frozenset[int] | None = frozenset({80, 443})
    max_redirects: int = 5
    # Which redirects are followed. A push gateway takes only 307/308, which keep a
    # POST a POST; 301-303 would turn it into a GET the gateway cannot answer.
    follow_redirects: frozenset[int] = frozenset(REDIRECTS)
    timeout_s: float = 10.0
    max_response_bytes: int = 10 * 1024 * 1024

    @classmethod
    def from_config(
        cls,
        *,
        allowed_ranges: Sequence[str] = (),
        denied_ranges: Sequence[str] = (),
        allowed_ports: Sequence[int] | None = (80, 443),
        **rest: object,
    ) -> OutboundPolicy:
        """A policy from config strings; raises ValueError naming a bad range."""
        return cls(
            allowed_ranges=tuple(ipaddress.ip_network(r, strict=False) for r in allowed_ranges),
            denied_ranges=tuple(ipaddress.ip_network(r, strict=False) for r in denied_ranges),
            allowed_ports=None if allowed_ports is None else frozenset(allowed_ports),
            **rest,  # type: ignore[arg-type]
        )

    def address_allowed(self, address: IPAddress) -> bool:
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address):
            inner = embedded_ipv4(address)
            if inner is not None:
                candidates.append(inner)
        for candidate in candidates:
            if any(
                candidate in net for net in self.denied_ranges if net.version == candidate.version
            ):
                return False
        for candidate in candidates:
            if any(
                candidate in net for net in self.allowed_ranges if net.version == candidate.version
            ):
                return True
        return self.allow_private or is_public(address)


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-cased names; a repeated header keeps its last value
    body: bytes
    url: str  # after redirects


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as in the URL, lower-cased, no brackets
    port: int
    path: str  # with the query
    literal: IPAddress | None = field(default=None)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


_HOST_CHARS = re.compile(r"^[a-z0-9._:%-]+$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a host names literally, in any form resolvers accept, else None.

    ``http://2130706433/`` and ``http://0177.0.0.1/`` are 127.0.0.1 to getaddrinfo and to
    browsers (WHATWG URL: a host whose last label is a number is an IPv4 address).
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if ":" in host:
        raise RequestRefused(f"invalid IPv6 address {host!r}")
    last = host.rstrip(".").rsplit(".", 1)[-1]
    if not _NUMERIC_LABEL.match(last):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
    except OSError:
        raise RequestRefused(f"invalid IPv4 address {host!r}") from None


def parse_target(url: str, policy: OutboundPolicy) -> Target:
    """Check a URL against the policy (scheme, port, host form); RequestRefused if not."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RequestRefused(f"invalid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise RequestRefused(f"only http and https URLs may be fetched, not {parts.scheme!r}")
    host = (parts.hostname or "").lower()
    if not host or not _HOST_CHARS.match(host):
        raise RequestRefused("the URL has no valid host")
    if parts.username is not None or parts.password is not None:
        raise RequestRefused("URLs with credentials are not fetched")
    port = port or (443 if parts.scheme == "https" else 80)
    if policy.allowed_ports is not None and port not in policy.allowed_ports:
        raise RequestRefused(f"port {port} is not allowed")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if any(ch in path for ch in "\r\n "):
        raise RequestRefused("invalid characters in the URL path")
    return Target(parts.scheme, host, port, path, parse_ip_literal(host))


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise OutboundError(f"cannot resolve {host}: {exc}") from None
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class OutboundClient:
    """HTTP requests under an OutboundPolicy; see the module docstring."""

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        resolver: Resolver = system_resolver,
        user_agent: str = "dendrite-lite",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        self._resolver = resolver
        self._user_agent = user_agent
        self._tls = tls or ssl.create_default_context()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        max_bytes: int | None = None,
    ) -> Response:
        """One request, following redirects; any status is a Response, a failure to get
        one an OutboundError (RequestRefused when the policy said no)."""
        limit = self.policy.max_response_bytes if max_bytes is None else max_bytes
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                for _ in range(self.policy.max_redirects + 1):
                    target = parse_target(url, self.policy)
                    address = await self.checked_address(target)
                    response, location = await self._exchange(
                        target, address, method, headers or {}, body, limit, url
                    )
                    if response.status not in self.policy.follow_redirects or not location:
                        return response
                    url = urljoin(url, location)
                    if response.status in (301, 302, 303) and method != "HEAD":
                        method, body = "GET", b""
        except TimeoutError:
            raise OutboundError(f"no complete answer within {self.policy.timeout_s:g}s") from None
        raise OutboundError(f"more than {self.policy.max_redirects} redirects")

    async def get(self, url: str, *, max_bytes: int | None = None) -> Response:
        return await self.request("GET", url, max_bytes=max_bytes)

    async def post_json(self, url: str, body: bytes) -> Response:
        return await self.request(
            "POST", url, headers={"Content-Type": "application/json"}, body=body
        )

    async def checked_address(self, target: Target) -> str:
        """The address to connect to; every address of the host must be allowed."""
        if target.literal is not None:
            candidates = [str(target.literal)]
        else:
            candidates = await self._resolver(target.host, target.port)
        if not candidates:
            raise OutboundError(f"{target.host} has no address")
        for candidate in candidates:
            try:
                address = ipaddress.ip_address(candidate.split("%", 1)[0])
            except ValueError:
                raise RequestRefused(f"resolver answered a non-address {candidate!r}") from None
            if not self.policy.address_allowed(address):
                raise RequestRefused(
                    f"{target.host} resolves to {address}, which is not a public address"
                )
        return candidates[0]

    async def _exchange(
        self,
        target: Target,
        address: str,
        method: str,
        headers: Mapping[str, str],
        body: bytes,
        limit: int,
        url: str,
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
            raise OutboundError(f"cannot connect to {target.host} ({address}): {exc}") from None
        try:
            lines = [
                f"{method} {target.path} HTTP/1.1",
                f"Host: {target.host_header}",
                f"User-Agent: {self._user_agent}",
                "Accept-Encoding: identity",
                "Connection: close",
            ]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            if body or method in ("POST", "PUT"):
                lines.append(f"Content-Length: {len(body)}")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
            status, response_headers = await _read_head(reader)
            content = b"" if method == "HEAD" else await _read_body(reader, response_headers, limit)
            return Response(status, response_headers, content, url), response_headers.get(
                "location"
            )
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ValueError) as exc:
            raise OutboundError(f"request to {target.host} failed: {exc!r}") from None
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    while True:
        status_line = (await reader.readline()).decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise OutboundError(f"not an HTTP/1 response: {status_line[:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        while True:
            line = (await reader.readline()).decode("latin-1")
            if line in ("\r\n", "\n"):
                break
            if not line:
                raise OutboundError("connection closed inside the response headers")
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if not 100 <= status < 200:  # 1xx: interim, a real answer follows
            return status, headers


async def _read_body(reader: asyncio.StreamReader, headers: Mapping[str, str], limit: int) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size_line = (await reader.readline()).decode("latin-1")
            size = int(size_line.split(";", 1)[0].strip() or "x", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(body)
            if len(body) + size > limit:
                raise ResponseTooLarge(f"response larger than {limit} bytes")
            body += await reader.readexactly(size)
            await reader.readline()
    if "content-length" in headers:
        length = int(headers["content-length"])
        if length > limit:
            raise ResponseTooLarge(f"response of {length} bytes exceeds {limit}")
        return await reader.readexactly(length)
    data = await reader.read(limit + 1)
    body = bytearray(data)
    while data and len(body) <= limit:
        data = await reader.read(limit + 1 - len(body))
        body += data
    if len(body) > limit:
        raise ResponseTooLarge(f"response larger than {limit} bytes")
    return bytes(body)

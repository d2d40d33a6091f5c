"""How the server reaches push gateways: through its one outbound HTTP client.

Pusher URLs come from clients, so a push is a request the server makes on a user's
behalf (SSRF): outbound_http.py refuses non-public addresses (unless `[push]
allow_private_gateways` is set), pins the address it checked, and checks every redirect
again. What is particular to push gateways is the policy:
- any port: gateways such as Sygnal often listen on 5000 or 8080;
- only 307/308 redirects, at most three: they keep a POST a POST (301-303 would turn the
  notification into a GET that no gateway answers);
- 15 s for the whole exchange and at most 1 MiB of answer (a notify answer is tiny).
"""

from __future__ import annotations

from dendrite_lite.outbound_http import OutboundClient, OutboundPolicy, Resolver, system_resolver

TIMEOUT_S = 15.0
MAX_REDIRECTS = 3
MAX_RESPONSE_BYTES = 1 << 20


def gateway_policy(*, allow_private: bool = False, timeout_s: float = TIMEOUT_S) -> OutboundPolicy:
    return OutboundPolicy(
        allow_private=allow_private,
        allowed_ports=None,
        max_redirects=MAX_REDIRECTS,
        follow_redirects=frozenset({307, 308}),
        timeout_s=timeout_s,
        max_response_bytes=MAX_RESPONSE_BYTES,
    )


def gateway_client(
    *,
    allow_private: bool = False,
    timeout_s: float = TIMEOUT_S,
    resolver: Resolver = system_resolver,
) -> OutboundClient:
    return OutboundClient(
        gateway_policy(allow_private=allow_private, timeout_s=timeout_s), resolver=resolver
    )

"""GET /_matrix/client/versions: https://spec.matrix.org/latest/client-server-api/#get_matrixclientversions"""

from __future__ import annotations

from typing import Any

from litestar import get

# The spec versions whose client-server API we serve as far as clients rely on it.
SUPPORTED_VERSIONS = [
    "r0.6.1",
    "v1.1",
    "v1.2",
    "v1.3",
    "v1.4",
    "v1.5",
    "v1.6",
    "v1.7",
    "v1.8",
    "v1.9",
    "v1.10",
    "v1.11",
    "v1.12",
]

UNSTABLE_FEATURES: dict[str, bool] = {
    # MSC2965-era clients ask this before using refresh tokens.
    "org.matrix.msc2918.refresh_token": True,
    # Custom profile fields (MSC4133), now in the spec.
    "uk.tcpip.msc4133": True,
    "uk.tcpip.msc4133.stable": True,
    # Dehydrated devices (MSC3814), which Element uses to receive keys while offline.
    "org.matrix.msc3814": True,
    # Threads (MSC3440, in the spec since v1.4): matrix-js-sdk turns on server-side
    # threads (/threads, thread filters) only when it sees this.
    "org.matrix.msc3440.stable": True,
    # Threaded read receipts (MSC3771) and per-thread notification counts (MSC3773).
    "org.matrix.msc3771": True,
    "org.matrix.msc3773": True,
    # Simplified sliding sync (MSC4186): Element X refuses a server without it.
    "org.matrix.simplified_msc3575": True,
}


@get("/_matrix/client/versions", sync_to_thread=False)
def get_versions() -> dict[str, Any]:
    """GET /_matrix/client/versions"""
    return {"versions": SUPPORTED_VERSIONS, "unstable_features": UNSTABLE_FEATURES}

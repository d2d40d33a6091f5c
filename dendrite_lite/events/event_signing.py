"""Signing events and checking their signatures.

Spec:
* https://spec.matrix.org/latest/server-server-api/#signing-events
* https://spec.matrix.org/latest/server-server-api/#validating-hashes-and-signatures-on-received-events
* https://spec.matrix.org/latest/rooms/v3/#authorization-rules (who must sign, v1/v2 vs v3+)
* https://spec.matrix.org/latest/rooms/v8/#authorization-rules (restricted joins)

Event signatures cover the *redacted* event (which still includes the content hash), so a
signature stays valid when the event is later redacted, and tampering with unredacted parts
shows up as a content-hash mismatch instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import nacl.signing

from dendrite_lite.events.identifiers import get_domain
from dendrite_lite.events.redaction import redact
from dendrite_lite.events.room_versions import EventFormat, RoomVersion
from dendrite_lite.events.signing import ServerSigningKey, sign_json, verify_signed_json

__all__ = [
    "required_signature_servers",
    "sign_event",
    "verify_event_signature",
]


def sign_event(
    event: Mapping[str, Any],
    room_version: RoomVersion,
    server_name: str,
    signing_key: ServerSigningKey,
) -> dict[str, Any]:
    """Return a copy of ``event`` (which must already carry its content hash) signed by us.

    The signature is computed over the redacted event and merged into the event's existing
    ``signatures``.
    """
    signed = sign_json(
        redact(event, room_version),
        server_name,
        signing_key.key_id,
        signing_key.signing_key,
        strict=room_version.strict_canonicaljson,
    )
    result = dict(event)
    result["signatures"] = signed["signatures"]
    return result


def verify_event_signature(
    event: Mapping[str, Any],
    room_version: RoomVersion,
    server_name: str,
    key_id: str,
    verify_key: nacl.signing.VerifyKey,
) -> None:
    """Check ``server_name``'s signature with ``key_id`` on the (redacted) event.

    Raises :class:`~dendrite_lite.events.signing.SignatureVerifyError`.  Works equally on a
    full event and on a redacted copy.  Key lookup and the ``valid_until_ts`` check
    (``room_version.enforce_key_validity``) are the caller's job.
    """
    verify_signed_json(
        redact(event, room_version),
        server_name,
        key_id,
        verify_key,
        strict=room_version.strict_canonicaljson,
    )


def required_signature_servers(
    event: Mapping[str, Any], room_version: RoomVersion, *, event_id: str | None = None
) -> set[str]:
    """The servers whose valid signature an event must carry.

    * the ``sender``'s server, except for invites carrying ``third_party_invite`` (the
      inviting server may differ; the auth rules check the 3pid signature instead);
    * v1/v2: the server of the ``event_id`` (``event_id`` argument or the event's own);
    * restricted-join rooms (v8+): the server of ``join_authorised_via_users_server`` on a
      join, as auth rule "the event is not validly signed by the homeserver of the user ID
      denoted by the key" demands.

    Raises ``ValueError`` if an ID that must name a server has no domain.
    """
    servers: set[str] = set()
    content = event.get("content")
    content = content if isinstance(content, Mapping) else {}
    is_member = event.get("type") == "m.room.member"
    membership = content.get("membership")
    if not (is_member and membership == "invite" and "third_party_invite" in content):
        servers.add(get_domain(str(event.get("sender", ""))))
    if room_version.event_format is EventFormat.V1:
        own_id = event_id if event_id is not None else event.get("event_id")
        servers.add(get_domain(str(own_id or "")))
    authoriser = content.get("join_authorised_via_users_server")
    if (
        room_version.restricted_join_rule
        and is_member
        and membership == "join"
        and isinstance(authoriser, str)
    ):
        servers.add(get_domain(authoriser))
    return servers

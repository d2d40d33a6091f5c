"""The event authorisation rules of every room version.

Spec: https://spec.matrix.org/latest/rooms/v12/#authorization-rules, plus the pages of
v1 (https://spec.matrix.org/latest/rooms/v1/#authorization-rules), v3, v6, v7, v8, v10
and v11 for the deltas; definitions (required power level, invite/kick/ban/redact levels,
target user) in https://spec.matrix.org/latest/server-server-api/#definitions; auth event
selection in https://spec.matrix.org/latest/server-server-api/#auth-events-selection.

Numbered as in room version 12 (v1-v5 number the same except that 2 and 3 are merged
into "2" and there is an extra rule 4 for ``m.room.aliases``; v6-v11 have no aliases rule
and so are numbered one lower from the membership rule on):

1. ``m.room.create``: reject if it has ``prev_events``; v1-11: reject if the ``room_id``
   domain differs from the ``sender`` domain, v12: reject if it has a ``room_id`` at all;
   reject an unrecognised ``content.room_version``; v1-10: reject without
   ``content.creator``; v12: reject ``additional_creators`` that is not a list of valid
   user IDs; otherwise allow.
2. (v12) The ``room_id`` must be the ID of an accepted create event (``!`` for ``$``).
3. Auth events: no duplicate ``(type, state_key)``; only entries the auth events selection
   allows (in v12 never the create event); none rejected; v1-11: the create event must be
   among them; all from the event's room.
4. If the create event has ``m.federate: false``, the sender must share its server.
   (v1-5 rule 4: ``m.room.aliases`` needs a ``state_key`` equal to the sender's domain,
   and is then allowed.)
5. ``m.room.member``: needs ``state_key`` and ``membership``; (v8+) a
   ``join_authorised_via_users_server`` server must have signed the event; then per
   membership ``join`` (creator's first join; own join only; not banned; invite/knock
   rules need invite or join; restricted/knock_restricted need join/invite or a joined
   authoriser with invite power; public allows), ``invite`` (third-party invites with
   signature verification; inviter joined, target not joined/banned, invite level),
   ``leave`` (self: from invite/join/knock; others: sender joined, ban level to unban, kick
   level and higher than target), ``ban`` (joined, ban level, higher than target), ``knock``
   (v7+: knock or knock_restricted join rule, self only, not banned/invited/joined);
   anything else is rejected.
6. The sender must be joined.
7. ``m.room.third_party_invite``: allowed iff the sender has the invite level.
8. The sender needs the event type's required power level.
9. A ``state_key`` starting with ``@`` must equal the sender.
10. ``m.room.power_levels``: (v10+) integer-only values; ``users`` maps valid user IDs to
    integers; (v12) creators must not appear in ``users``; if there is a previous power
    levels event, no added/changed/removed value may be above the sender's level (for other
    users' entries: the old value must be below it); ``notifications`` from v6.
11. (v1-2 only) ``m.room.redaction``: needs the redact level, or the redacted event's ID
    on the redaction's ID server.
12. Otherwise, allow.

Room creators in v12 (the create ``sender`` and ``additional_creators``) have an
infinite power level.

Entry points: :func:`check_auth` (rules 1, 2, 4-12 against a state map; used for all
three receipt checks and by state resolution), :func:`check_auth_events` (rule 3),
:func:`check_auth_against_auth_events` (both, for receipt check 4),
:func:`auth_types_for_event` / :func:`select_auth_event_ids` (what to select as auth
events, for received and for new events), and
:func:`should_apply_redaction` (v3+ "handling redactions").
"""

from dendrite_lite.events.auth_rules.checks import (
    auth_types_for,
    auth_types_for_event,
    check_auth,
    check_auth_against_auth_events,
    check_auth_events,
    check_create_event,
    select_auth_event_ids,
    should_apply_redaction,
)
from dendrite_lite.events.auth_rules.common import AuthError, AuthState, creators
from dendrite_lite.events.auth_rules.membership import (
    SignatureChecker,
    verify_third_party_invite_signature,
)
from dendrite_lite.events.auth_rules.power_levels import (
    INFINITE_POWER_LEVEL,
    named_level,
    parse_power_level,
    required_power_level,
    user_power_level,
)

__all__ = [
    "INFINITE_POWER_LEVEL",
    "AuthError",
    "AuthState",
    "SignatureChecker",
    "auth_types_for",
    "auth_types_for_event",
    "check_auth",
    "check_auth_against_auth_events",
    "check_auth_events",
    "check_create_event",
    "creators",
    "named_level",
    "parse_power_level",
    "required_power_level",
    "select_auth_event_ids",
    "should_apply_redaction",
    "user_power_level",
    "verify_third_party_invite_signature",
]

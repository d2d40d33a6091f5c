"""The push APIs: push rules, /notifications and pushers.

https://spec.matrix.org/latest/client-server-api/#push-rules-api
https://spec.matrix.org/latest/client-server-api/#listing-notifications
https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3pushersset
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import apsw
import msgspec

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.clock import now_ms
from dendrite_lite.errors import ErrCode, MatrixError, bad_json, invalid_param, missing_param
from dendrite_lite.notifier import Notifier
from dendrite_lite.push.defaults import DEFAULT_IDS
from dendrite_lite.push.evaluator import RuleCache
from dendrite_lite.push.hook import PushHook
from dendrite_lite.push.rules import (
    MAX_USER_RULES,
    Rule,
    check_kind,
    check_new_rule_id,
    parse_actions,
    parse_new_rule,
)
from dendrite_lite.push.ruleset import account_data_content, assemble, rule_json, ruleset_json
from dendrite_lite.rooms import client_format
from dendrite_lite.storage import account_data, streams
from dendrite_lite.storage import notifications as notification_store
from dendrite_lite.storage import push_rules as store
from dendrite_lite.storage import pushers as pusher_store
from dendrite_lite.storage.db import Database

T = TypeVar("T")

PUSH_RULES = "m.push_rules"


# -- push rules ----------------------------------------------------------------------------


def _find(ruleset: dict[str, list[Rule]], kind: str, rule_id: str) -> Rule:
    for rule in ruleset[kind]:
        if rule.rule_id == rule_id:
            return rule
    raise MatrixError(404, ErrCode.NOT_FOUND, "The push rule was not found.")


class PushRules:
    def __init__(self, db: Database, notifier: Notifier, cache: RuleCache) -> None:
        self.db = db
        self.notifier = notifier
        self.cache = cache

    async def _ruleset(self, user_id: str) -> dict[str, list[Rule]]:
        return await self.db.read(lambda conn: assemble(store.load(conn, user_id)))

    async def get_all(self, requester: Requester) -> dict[str, Any]:
        """GET /pushrules/"""
        return {"global": await self.get_global(requester)}

    async def get_global(self, requester: Requester) -> dict[str, Any]:
        """GET /pushrules/global/"""
        user_id = requester.user_id
        return ruleset_json(await self._ruleset(user_id), user_id)

    async def get_kind(self, requester: Requester, kind: str) -> list[dict[str, Any]]:
        check_kind(kind)
        user_id = requester.user_id
        return [rule_json(rule, user_id) for rule in (await self._ruleset(user_id))[kind]]

    async def get_rule(self, requester: Requester, kind: str, rule_id: str) -> dict[str, Any]:
        check_kind(kind)
        user_id = requester.user_id
        return rule_json(_find(await self._ruleset(user_id), kind, rule_id), user_id)

    async def _change(self, user_id: str, change: Callable[[apsw.Connection], T]) -> T:
        """Apply a change to the user's rules in one write unit with the new m.push_rules
        account data; the rule cache forgets the user's compiled rules."""

        def unit(conn: apsw.Connection) -> tuple[T, int]:
            result = change(conn)
            self.cache.invalidate(user_id)
            position = streams.next_position(conn)
            content = account_data_content(assemble(store.load(conn, user_id)), user_id)
            account_data.upsert(conn, user_id, account_data.GLOBAL, PUSH_RULES, content, position)
            return result, position

        try:
            result, position = await self.db.write(unit)
        finally:
            # Also after a failed commit: the cache may hold what was rolled back.
            self.cache.invalidate(user_id)
        self.notifier.notify([user_id], position)
        return result

    async def put_rule(
        self,
        requester: Requester,
        kind: str,
        rule_id: str,
        body: Any,
        before: str | None,
        after: str | None,
    ) -> None:
        """PUT /pushrules/global/{kind}/{ruleId}"""
        if not isinstance(body, dict):
            raise bad_json("Expected a JSON object")
        check_kind(kind)
        check_new_rule_id(kind, rule_id)
        new = parse_new_rule(kind, rule_id, body)
        for relative in (before, after):
            if relative is not None and relative.startswith("."):
                raise invalid_param("A rule cannot be placed relative to a server-default rule")
        user_id = requester.user_id

        def put(conn: apsw.Connection) -> None:
            own = store.own_rules(conn, user_id, kind)
            existing = next((r for r in own if r.rule_id == rule_id), None)
            if existing is None and store.count_rules(conn, user_id) >= MAX_USER_RULES:
                raise MatrixError(403, ErrCode.FORBIDDEN, f"At most {MAX_USER_RULES} push rules")
            order = [r.rule_id for r in own if r.rule_id != rule_id]
            if before is not None or after is not None:
                # "If both after and before are provided, the new or updated rule must be
                # the next most important rule with respect to the rule identified by
                # before."
                relative = before if before is not None else after
                if relative not in order:
                    raise MatrixError(
                        400, ErrCode.UNKNOWN, f"before/after rule not found: {relative}"
                    )
                index = order.index(relative) + (0 if before is not None else 1)
            elif existing is not None:
                index = [r.rule_id for r in own].index(rule_id)  # an update keeps its place
            else:
                index = 0  # a new rule is the most important of its kind
            order.insert(index, rule_id)
            rule = new if existing is None else new.changed(enabled=existing.enabled)
            store.upsert_rule(conn, user_id, rule, 0)
            store.set_order(conn, user_id, kind, order)

        await self._change(user_id, put)

    async def delete_rule(self, requester: Requester, kind: str, rule_id: str) -> None:
        """DELETE /pushrules/global/{kind}/{ruleId}"""
        check_kind(kind)
        if rule_id in DEFAULT_IDS[kind]:
            raise invalid_param("Server-default rules cannot be deleted")
        user_id = requester.user_id

        def delete(conn: apsw.Connection) -> None:
            if not store.delete_rule(conn, user_id, kind, rule_id):
                raise MatrixError(404, ErrCode.NOT_FOUND, "The push rule was not found.")

        await self._change(user_id, delete)

    async def get_enabled(self, requester: Requester, kind: str, rule_id: str) -> bool:
        check_kind(kind)
        return _find(await self._ruleset(requester.user_id), kind, rule_id).enabled

    async def get_actions(self, requester: Requester, kind: str, rule_id: str) -> list[Any]:
        check_kind(kind)
        return _find(await self._ruleset(requester.user_id), kind, rule_id).actions

    async def set_enabled(
        self, requester: Requester, kind: str, rule_id: str, enabled: bool
    ) -> None:
        await self._set(requester, kind, rule_id, enabled=enabled)

    async def set_actions(self, requester: Requester, kind: str, rule_id: str, body: Any) -> None:
        if not isinstance(body, dict) or "actions" not in body:
            raise bad_json("Expected an object with 'actions'")
        await self._set(requester, kind, rule_id, actions=parse_actions(body["actions"]))

    async def _set(
        self,
        requester: Requester,
        kind: str,
        rule_id: str,
        *,
        enabled: bool | None = None,
        actions: list[Any] | None = None,
    ) -> None:
        check_kind(kind)
        user_id = requester.user_id

        def change(conn: apsw.Connection) -> None:
            if rule_id in DEFAULT_IDS[kind]:
                store.set_default(conn, user_id, kind, rule_id, enabled=enabled, actions=actions)
            elif not store.set_own(conn, user_id, kind, rule_id, enabled=enabled, actions=actions):
                raise MatrixError(404, ErrCode.NOT_FOUND, "The push rule was not found.")

        await self._change(user_id, change)


# -- /notifications ------------------------------------------------------------------------

DEFAULT_NOTIFICATIONS_LIMIT = 20
MAX_NOTIFICATIONS_LIMIT = 100


class Notifications:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(
        self, requester: Requester, from_: str | None, limit: int | None, only: str | None
    ) -> dict[str, Any]:
        """GET /notifications: newest first; `next_token` continues further back."""
        before = None
        if from_ is not None:
            if not from_.isdigit() or len(from_) > 18:
                raise invalid_param("Invalid 'from' token")
            before = int(from_)
        if limit is None:
            limit = DEFAULT_NOTIFICATIONS_LIMIT
        if limit < 1:
            raise invalid_param("limit must be positive")
        limit = min(limit, MAX_NOTIFICATIONS_LIMIT)
        only_highlight = only == "highlight"
        user_id = requester.user_id
        device = (requester.user_id, requester.device_id)

        def read(conn: apsw.Connection) -> dict[str, Any]:
            rows, next_token = notification_store.page(conn, user_id, before, limit, only_highlight)
            marks = notification_store.read_marks(conn, user_id, [r.room_id for r in rows])
            now = now_ms()
            listed = [
                {
                    "actions": msgspec.Raw(row.actions),
                    "event": _without_room_id(
                        client_format.serve(row.event, requester_device=device, now=now)
                    ),
                    "read": row.stream_pos
                    <= max(
                        marks.get((row.room_id, notification_store.UNTHREADED), 0),
                        marks.get((row.room_id, row.thread_id), 0),
                    ),
                    "room_id": row.room_id,
                    "ts": row.ts,
                }
                for row in rows
            ]
            result: dict[str, Any] = {"notifications": listed}
            if next_token is not None:
                result["next_token"] = str(next_token)
            return result

        return await self.db.read(read)


def _without_room_id(event: msgspec.Raw) -> dict[str, Any]:
    """The spec's ClientEventWithoutRoomID (the room is the notification's room_id)."""
    decoded: dict[str, Any] = msgspec.json.decode(event)
    decoded.pop("room_id", None)
    return decoded


# -- pushers ---------------------------------------------------------------------------------

NOTIFY_PATH = "/_matrix/push/v1/notify"
MAX_PUSHKEY_BYTES = 512
MAX_APP_ID_CHARS = 64
MAX_URL_CHARS = 2048
MAX_PUSHERS_PER_USER = 100


class PusherBody(msgspec.Struct, kw_only=True):
    pushkey: str | msgspec.UnsetType = msgspec.UNSET
    kind: str | msgspec.UnsetType | None = msgspec.UNSET
    app_id: str | msgspec.UnsetType = msgspec.UNSET
    app_display_name: str | msgspec.UnsetType = msgspec.UNSET
    device_display_name: str | msgspec.UnsetType = msgspec.UNSET
    profile_tag: str | None = None
    lang: str | msgspec.UnsetType = msgspec.UNSET
    data: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    append: bool = False


def check_gateway_url(url: Any) -> str:
    """data.url of an http pusher: an http(s) URL whose path ends in
    /_matrix/push/v1/notify (the spec asks for HTTPS; plain HTTP is allowed for gateways
    on a trusted network, and the private-address guard applies to both)."""
    if not isinstance(url, str):
        raise missing_param("An http pusher needs data.url")
    if len(url) > MAX_URL_CHARS:
        raise invalid_param("data.url is too long")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise invalid_param("data.url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid_param("data.url must be an http(s) URL")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise invalid_param("data.url must not hold credentials or a fragment")
    if not parts.path.endswith(NOTIFY_PATH):
        raise invalid_param(f"data.url must be the gateway's {NOTIFY_PATH} endpoint")
    return url


class Pushers:
    def __init__(self, db: Database, hook: PushHook) -> None:
        self.db = db
        self.hook = hook

    async def list(self, requester: Requester) -> list[dict[str, Any]]:
        """GET /pushers"""
        rows = await self.db.read(lambda conn: pusher_store.for_user(conn, requester.user_id))
        listed = []
        for row in rows:
            pusher: dict[str, Any] = {
                "pushkey": row.pushkey,
                "kind": row.kind,
                "app_id": row.app_id,
                "app_display_name": row.app_display_name,
                "device_display_name": row.device_display_name,
                "lang": row.lang,
                "data": row.data,
            }
            if row.profile_tag is not None:
                pusher["profile_tag"] = row.profile_tag
            listed.append(pusher)
        return listed

    async def set(self, requester: Requester, body: PusherBody) -> None:
        """POST /pushers/set"""
        missing = [
            name for name in ("kind", "app_id", "pushkey") if getattr(body, name) is msgspec.UNSET
        ]
        if missing:
            raise missing_param(f"Missing parameters: {', '.join(missing)}")
        assert isinstance(body.app_id, str) and isinstance(body.pushkey, str)
        app_id, pushkey = body.app_id, body.pushkey
        if not app_id or len(app_id) > MAX_APP_ID_CHARS:
            raise invalid_param(f"app_id must be 1 to {MAX_APP_ID_CHARS} characters")
        if not pushkey or len(pushkey.encode()) > MAX_PUSHKEY_BYTES:
            raise invalid_param(f"pushkey must be 1 to {MAX_PUSHKEY_BYTES} bytes")
        user_id = requester.user_id
        hook = self.hook
        if body.kind is None:

            def delete(conn: apsw.Connection) -> None:
                pusher_store.delete(conn, user_id, app_id, pushkey)
                if not pusher_store.has_pushers(conn, user_id):
                    hook.users_with_pushers.discard(user_id)

            await self.db.write(delete)
            return
        if body.kind == "email":
            raise invalid_param(
                "Email pushers are not supported: this server sends no email "
                "(and has no email addresses to send to)"
            )
        if body.kind != "http":
            raise invalid_param(f"Unknown pusher kind {body.kind!r}")
        missing = [
            name
            for name in ("app_display_name", "device_display_name", "lang", "data")
            if getattr(body, name) is msgspec.UNSET
        ]
        if missing:
            raise missing_param(f"Missing parameters: {', '.join(missing)}")
        assert isinstance(body.data, dict)
        assert isinstance(body.app_display_name, str)
        assert isinstance(body.device_display_name, str)
        assert isinstance(body.lang, str)
        check_gateway_url(body.data.get("url"))
        format_ = body.data.get("format")
        if format_ is not None and format_ != "event_id_only":
            raise invalid_param("data.format may only be 'event_id_only'")
        pusher = pusher_store.NewPusher(
            user_id=user_id,
            device_id=requester.device_id,
            kind=body.kind,
            app_id=app_id,
            pushkey=pushkey,
            app_display_name=body.app_display_name,
            device_display_name=body.device_display_name,
            profile_tag=body.profile_tag,
            lang=body.lang,
            data=body.data,
        )
        append = body.append

        def store_pusher(conn: apsw.Connection) -> None:
            existing = pusher_store.for_user(conn, user_id)
            if len(existing) >= MAX_PUSHERS_PER_USER and not any(
                p.app_id == app_id and p.pushkey == pushkey for p in existing
            ):
                raise MatrixError(
                    403, ErrCode.FORBIDDEN, f"At most {MAX_PUSHERS_PER_USER} pushers per user"
                )
            # New pushers start from now: nothing from before is pushed.
            pusher_store.upsert(conn, pusher, now_ms(), streams.current_position(conn))
            if not append:
                # "Otherwise, the homeserver must remove any other pushers with the same
                # App ID and pushkey for different users."
                for owner in pusher_store.delete_for_other_users(conn, user_id, app_id, pushkey):
                    if not pusher_store.has_pushers(conn, owner):
                        hook.users_with_pushers.discard(owner)
            hook.users_with_pushers.add(user_id)

        await self.db.write(store_pusher)

"""The three requests of every message's path, answered without the framework.

A message costs a `PUT .../send/...`, and each client it reaches answers one long-poll
(`GET /sync` or sliding sync) and sends the next. On one core of a small board the
framework's per-request work (routing, signature models, dependency injection, response
objects) was a third of the main thread's time for these requests (py-spy, bench/RESULTS.md),
and a big room's fan-out pays it once per member. These three are served here, in plain
ASGI, by the same services and the same parsing as the Litestar handlers in
api/client/{sync,sliding_sync,room_events}.py, which stay registered: every other method or
shape of path still goes through Litestar, and the bad-input sweep
(tests/e2e/test_bad_input.py) holds both to the same errors.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from dendrite_lite.accounts.devices import Devices
from dendrite_lite.api.client.sliding_sync import unstable_response
from dendrite_lite.api.client.sync import load_filter
from dendrite_lite.api.dependencies import GUEST_ENDPOINTS, bearer_token
from dendrite_lite.api.errors import error_headers
from dendrite_lite.api.middleware import CORS_LINES
from dendrite_lite.auth.tokens import Requester, TokenService
from dendrite_lite.clock import now_ms
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.http_protocol import WHOLE_RESPONSE, WholeResponse
from dendrite_lite.rooms.sending import Sending
from dendrite_lite.sliding_sync import requests as sliding_requests
from dendrite_lite.sliding_sync.service import SlidingSync
from dendrite_lite.storage.db import Database
from dendrite_lite.sync.service import Sync

log = logging.getLogger("dendrite_lite.api")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SYNC_PATH = "/_matrix/client/v3/sync"
SLIDING_SYNC_PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
SEND_TEMPLATE = "/_matrix/client/v3/rooms/{room_id}/send/{event_type}/{txn_id}"
_SEND = re.compile(r"/_matrix/client/v3/rooms/([^/]+)/send/([^/]+)/([^/]+)")
PRESENCE_STATES = frozenset({"offline", "online", "unavailable"})

_JSON = (b"content-type", b"application/json")
_JSON_LINES = b"content-type: application/json\r\n" + CORS_LINES


class _Missing:
    pass


_NO_BODY = _Missing()


def _param(query: dict[str, str], name: str, kind: type, default: Any) -> Any:
    """A query parameter converted as Litestar converts it (msgspec, lax)."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        return msgspec.convert(raw, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise MatrixError(400, ErrCode.INVALID_PARAM, f"Invalid parameter {name}: {exc}") from None


def _presence(query: dict[str, str]) -> str:
    value = query.get("set_presence", "online")
    if value not in PRESENCE_STATES:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "Invalid parameter set_presence")
    return value


# Distinct sliding sync requests remembered: a client sends the same body with every
# long-poll, and there are about as many bodies as kinds of clients and window sizes in
# use. Element X's is ~1.5 KiB; larger bodies are parsed every time, so what is kept
# stays within a few MiB whatever clients send.
PARSED_BODIES = 64
PARSED_BODY_MAX_BYTES = 16 * 1024


class ParsedBodies:
    """Sliding sync requests already parsed, by their body without `txn_id`.

    Element X sends the same body (its lists, the 17 required_state pairs, the
    extensions) with every long-poll; only `pos` in the query string and the body's
    `txn_id` move. In a big room's fan-out every member's next poll parsed it again
    (bench/RESULTS.md, fourteenth session). The decoded body (the JSON is always decoded:
    its errors come first, as before) without `txn_id`, encoded again, is the key; the
    parsed request depends on the user (`$ME` in required_state), so it is kept per user
    under the key, and the request's own `txn_id` is put back. Only bodies that parsed
    without an error are kept."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._bodies: OrderedDict[bytes, dict[str, sliding_requests.SyncRequest]] = OrderedDict()

    def parse(self, data: Any, user_id: str) -> tuple[sliding_requests.SyncRequest, str | None]:
        """`sliding_requests.parse_unstable(data, user_id)`, remembered: the request
        without its `txn_id`, and the `txn_id`."""
        if not isinstance(data, dict):
            return _without_txn_id(sliding_requests.parse_unstable(data, user_id))
        txn_id = data.get("txn_id")
        if txn_id is not None and not isinstance(txn_id, str):
            return _without_txn_id(sliding_requests.parse_unstable(data, user_id))  # its error
        key = msgspec.json.encode({k: v for k, v in data.items() if k != "txn_id"})
        if len(key) > PARSED_BODY_MAX_BYTES:
            return _without_txn_id(sliding_requests.parse_unstable(data, user_id))
        by_user = self._bodies.get(key)
        request = None if by_user is None else by_user.get(user_id)
        if request is None:
            request, _ = _without_txn_id(sliding_requests.parse_unstable(data, user_id))
            if by_user is None:
                by_user = self._bodies[key] = {}
                if len(self._bodies) > self.size:
                    self._bodies.popitem(last=False)
            by_user[user_id] = request
        else:
            self._bodies.move_to_end(key)
        return request, txn_id


def _without_txn_id(
    request: sliding_requests.SyncRequest,
) -> tuple[sliding_requests.SyncRequest, str | None]:
    if request.txn_id is None:
        return request, None
    return dataclasses.replace(request, txn_id=None), request.txn_id


class FastLane:
    def __init__(
        self,
        *,
        db: Database,
        tokens: TokenService,
        devices: Devices,
        sync: Sync,
        sliding_sync: SlidingSync,
        sending: Sending,
        max_body: int,
        path_value: Callable[[str], str],
    ) -> None:
        self.db = db
        self.tokens = tokens
        self.devices = devices
        self.sync_service = sync
        self.sliding_sync = sliding_sync
        self.sending = sending
        self.max_body = max_body
        self.path_value = path_value
        self.parsed = ParsedBodies(PARSED_BODIES)

    def route(self, scope: Scope) -> Callable[[Scope, Receive, Send], Awaitable[int]] | None:
        """The fast handler of this request, or None (Litestar serves it)."""
        method, path = scope["method"], scope["path"]
        if method == "GET" and path == SYNC_PATH:
            scope["path_template"] = SYNC_PATH
            return self._sync
        if method == "POST" and path == SLIDING_SYNC_PATH:
            scope["path_template"] = SLIDING_SYNC_PATH
            return self._sliding_sync
        if method == "PUT" and path.startswith("/_matrix/client/v3/rooms/"):
            match = _SEND.fullmatch(path)
            if match is not None:
                scope["path_template"] = SEND_TEMPLATE
                scope["path_params"] = match.groups()
                return self._send
        return None

    # -- the three handlers ---------------------------------------------------------------

    async def _sync(self, scope: Scope, receive: Receive, send: Send) -> int:
        async def handle() -> Any:
            query = _query(scope)
            requester = await self._requester(scope, query)
            timeout = _param(query, "timeout", int, 0)
            full_state = _param(query, "full_state", bool, False)
            use_state_after = _param(query, "use_state_after", bool, False)
            set_presence = _presence(query)
            if timeout < 0:
                raise MatrixError(400, ErrCode.INVALID_PARAM, "timeout must not be negative")
            sync_filter = await load_filter(
                self.sync_service.filter_ids, requester.user_id, query.get("filter")
            )
            return await self.sync_service.sync(
                requester,
                since=query.get("since"),
                timeout_ms=timeout,
                full_state=full_state,
                sync_filter=sync_filter,
                set_presence=set_presence,
                use_state_after=use_state_after,
            )

        return await self._answer(scope, send, handle)

    async def _sliding_sync(self, scope: Scope, receive: Receive, send: Send) -> int:
        async def handle() -> Any:
            data = await self._body(scope, receive)
            query = _query(scope)
            requester = await self._requester(scope, query)
            timeout = _param(query, "timeout", int, 0)
            set_presence = _presence(query)
            if timeout < 0:
                raise MatrixError(400, ErrCode.INVALID_PARAM, "timeout must not be negative")
            request, txn_id = self.parsed.parse(
                None if data is _NO_BODY else data, requester.user_id
            )
            result = await self.sliding_sync.sync(
                requester,
                request,
                pos=query.get("pos"),
                timeout_ms=timeout,
                set_presence=set_presence,
                txn_id=txn_id,
            )
            return unstable_response(result)

        return await self._answer(scope, send, handle)

    async def _send(self, scope: Scope, receive: Receive, send: Send) -> int:
        async def handle() -> Any:
            data = await self._body(scope, receive)
            if data is _NO_BODY:
                raise MatrixError(400, ErrCode.NOT_JSON, "Content not JSON")
            requester = await self._requester(scope, _query(scope))
            room_id, event_type, txn_id = (self.path_value(p) for p in scope["path_params"])
            event_id = await self.sending.send(requester, room_id, event_type, txn_id, data)
            return {"event_id": event_id}

        return await self._answer(scope, send, handle)

    # -- what every request needs -----------------------------------------------------------

    async def _requester(self, scope: Scope, query: dict[str, str]) -> Requester:
        """As api/dependencies.provide_requester, from the raw scope."""
        authorization = user_agent = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")
        token = bearer_token(authorization, query.get("access_token"))
        if token is None:
            raise MatrixError(401, ErrCode.MISSING_TOKEN, "Missing access token")
        requester = await self.tokens.authenticate(token)
        if requester.is_guest and (scope["method"], scope["path_template"]) not in GUEST_ENDPOINTS:
            raise MatrixError(
                403, ErrCode.GUEST_ACCESS_FORBIDDEN, "Guests may not use this endpoint"
            )
        client = scope.get("client")
        self.devices.saw(requester, now_ms(), client[0] if client else "unknown", user_agent)
        return requester

    async def _body(self, scope: Scope, receive: Receive) -> Any:
        """The JSON body (or _NO_BODY), with the same limit and errors as Litestar's."""
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_body:
                    raise MatrixError(413, ErrCode.TOO_LARGE, "Request body too large")
                break
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise MatrixError(413, ErrCode.TOO_LARGE, "Request body too large")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if not body:
            return _NO_BODY
        try:
            return msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise MatrixError(400, ErrCode.NOT_JSON, f"Content not JSON: {exc}") from None
        except RecursionError:
            raise MatrixError(400, ErrCode.BAD_JSON, "JSON is nested too deeply") from None

    async def _answer(self, scope: Scope, send: Send, handle: Callable[[], Awaitable[Any]]) -> int:
        """Answers with what `handle` returns, or its error; returns the status."""
        try:
            body = msgspec.json.encode(await handle())
            status, headers = 200, [_JSON]
        except MatrixError as exc:
            status, headers = exc.status, [*_raw(error_headers(exc.errcode, exc.extra)), _JSON]
            body = msgspec.json.encode(exc.to_json())
        except Exception:
            request_id = scope.get("state", {}).get("request_id", "-")
            log.exception(
                "unhandled error [request %s] %s %s", request_id, scope["method"], scope["path"]
            )
            status, headers = 500, [*_raw(error_headers(ErrCode.UNKNOWN, {})), _JSON]
            body = msgspec.json.encode(
                {
                    "errcode": ErrCode.UNKNOWN,
                    "error": f"Internal server error (request {request_id})",
                }
            )
        whole: WholeResponse | None = scope.get("extensions", {}).get(WHOLE_RESPONSE)
        if whole is not None:
            lines = _JSON_LINES
            if headers[0] is not _JSON:
                lines = b"".join(b"%s: %s\r\n" % pair for pair in headers) + CORS_LINES
            if whole(status, lines, body):
                return status
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return status


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


def _query(scope: Scope) -> dict[str, str]:
    """The query string; the first of repeated parameters counts."""
    raw: bytes = scope.get("query_string") or b""
    if not raw:
        return {}
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        query.setdefault(name, value)
    return query

"""Every error leaves as a Matrix error JSON; never a traceback.

https://spec.matrix.org/latest/client-server-api/#standard-error-response
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotAuthorizedException,
    ValidationException,
)

from dendrite_lite.errors import ErrCode, MatrixError, UIARequired

log = logging.getLogger("dendrite_lite.api")

JSON_HEADERS = {"Cache-Control": "no-cache, no-store, must-revalidate"}


def error_headers(errcode: str, extra: dict[str, Any]) -> dict[str, str]:
    """The headers of an error answer (api/fast_lane.py writes them too)."""
    headers = dict(JSON_HEADERS)
    if errcode == ErrCode.LIMIT_EXCEEDED and "retry_after_ms" in extra:
        headers["Retry-After"] = str(max(1, (int(extra["retry_after_ms"]) + 999) // 1000))
    return headers


def error_response(status: int, errcode: str, message: str, **extra: Any) -> Response[Any]:
    return Response(
        {"errcode": errcode, "error": message, **extra},
        status_code=status,
        headers=error_headers(errcode, extra),
    )


def matrix_error(request: Request[Any, Any, Any], exc: MatrixError) -> Response[Any]:
    if isinstance(exc, UIARequired):
        return Response(exc.to_json(), status_code=401, headers=JSON_HEADERS)
    return error_response(exc.status, exc.errcode, exc.message, **exc.extra)


def validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    details = exc.extra if isinstance(exc.extra, list) else []
    for item in details:
        if not isinstance(item, dict):
            continue
        source, message, key = item.get("source"), str(item.get("message")), item.get("key")
        if source == "body":
            if message == "'data'":  # no body at all where one is required
                return error_response(400, ErrCode.NOT_JSON, "Content not JSON")
            where = f" at {key}" if key and key != "data" else ""
            return error_response(400, ErrCode.BAD_JSON, f"{message}{where}")
        if source in ("query", "path", "header"):
            if "missing" in message.lower():
                return error_response(400, ErrCode.MISSING_PARAM, f"Missing parameter {key}")
            return error_response(400, ErrCode.INVALID_PARAM, f"Invalid parameter {key}: {message}")
    if exc.detail.startswith("Missing required "):
        # A missing query parameter comes without `extra`: "Missing required query
        # parameter 'username' for path /...?access_token=..." (keep the query out).
        return error_response(400, ErrCode.MISSING_PARAM, exc.detail.split(" for path ", 1)[0])
    return error_response(400, ErrCode.BAD_JSON, exc.detail)


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status == 404:
        return error_response(404, ErrCode.UNRECOGNIZED, "Unrecognized request")
    if status == 405:
        return error_response(405, ErrCode.UNRECOGNIZED, "Unrecognized request")
    if status == 413:
        return error_response(413, ErrCode.TOO_LARGE, "Request body too large")
    if isinstance(exc, NotAuthorizedException):
        return error_response(401, ErrCode.MISSING_TOKEN, "Missing access token")
    if isinstance(exc, ClientException) and status == 400:
        # The body failed to decode before any handler ran (msgspec's JSON errors).
        return error_response(400, ErrCode.NOT_JSON, f"Content not JSON: {exc.detail}")
    if 400 <= status < 500:
        return error_response(status, ErrCode.UNKNOWN, exc.detail)
    log.error("HTTP %s on %s %s: %s", status, request.method, request.url.path, exc.detail)
    return error_response(status, ErrCode.UNKNOWN, "Internal server error")


def too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    # msgspec gives up on deeply nested JSON with a RecursionError: the client's fault.
    if "while deserializing" in str(exc):
        return error_response(400, ErrCode.BAD_JSON, "JSON is nested too deeply")
    return unexpected_error(request, exc)


class AnswerNow(Exception):
    """Raised by a helper that has already made the whole answer (a page saying the CSRF
    token is wrong, say), so that handlers need not pass a `Response | result` back up."""

    def __init__(self, response: Response[Any]) -> None:
        super().__init__()
        self.response = response


def answer_now(request: Request[Any, Any, Any], exc: AnswerNow) -> Response[Any]:
    return exc.response


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    request_id = request.scope.get("state", {}).get("request_id", "-")
    log.exception(
        "unhandled error [request %s] %s %s", request_id, request.method, request.url.path
    )
    return error_response(500, ErrCode.UNKNOWN, f"Internal server error (request {request_id})")


# The OAuth 2.0 endpoints (oauth/) answer errors as the OAuth RFCs do, also for what
# fails before their handlers run (a body that is not JSON, a body too large, a wrong
# method). A MatrixError their handlers raise on purpose (M_LIMIT_EXCEEDED, OAuth
# turned off) stays as it is.
OAUTH_PREFIX = "/oauth2/"


def _oauth_shaped(handler: Any) -> Any:
    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        response: Response[Any] = handler(request, exc)
        body = response.content
        if not request.url.path.startswith(OAUTH_PREFIX) or not isinstance(body, dict):
            return response
        if "errcode" not in body:
            return response
        error = "server_error" if (response.status_code or 500) >= 500 else "invalid_request"
        return Response(
            {"error": error, "error_description": str(body.get("error", ""))},
            status_code=response.status_code,
            headers=JSON_HEADERS,
        )

    return handle


EXCEPTION_HANDLERS: dict[Any, Any] = {
    AnswerNow: answer_now,
    MatrixError: matrix_error,
    ValidationException: _oauth_shaped(validation_error),
    HTTPException: _oauth_shaped(http_error),
    RecursionError: _oauth_shaped(too_deep),
    Exception: _oauth_shaped(unexpected_error),
}

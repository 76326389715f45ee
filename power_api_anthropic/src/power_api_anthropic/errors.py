"""The one place where errors become Anthropic's shape: ``{"type": "error", "error":
{"type": "invalid_request_error", "message": ...}}``, its ``error.type`` following the
status, so the ``anthropic`` SDK raises the matching exception class."""

from __future__ import annotations

import logging
from typing import Any

from flask import Response
from werkzeug.exceptions import HTTPException

from power_core.errors import Cancelled, InvalidModelName, PowerError, ServerBusy
from power_core.server.views import json_response

log = logging.getLogger("power_api_anthropic")

#: Anthropic's ``error.type`` for each status it uses
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_body(message: str, status: int) -> dict[str, Any]:
    """The JSON body of an error with ``status``."""
    kind = _TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def power_error_status(exc: PowerError) -> int:
    """The status a PowerError is answered with: its own, except where Anthropic differs."""
    if isinstance(exc, InvalidModelName):
        return 404  # no model has an invalid name: clients expect "not found"
    if isinstance(exc, Cancelled):
        return 503  # the model was unloaded under a client that is still there
    return exc.http_status


def power_error_response(exc: PowerError) -> Response:
    """Answer a PowerError raised before a response started."""
    status = power_error_status(exc)
    if status >= 500:
        log.warning("%s: %s", type(exc).__name__, exc.message)
    else:  # what a client sent that is refused, for whoever debugs that client
        log.debug("%d %s: %s", status, type(exc).__name__, exc.message)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, ServerBusy) else None
    return json_response(error_body(exc.message, status), status, headers)


def http_error_response(exc: HTTPException) -> Response:
    """Answer werkzeug's errors (bad JSON, a body too large, a wrong method) alike."""
    status = exc.code or 500
    response = json_response(error_body(exc.description or exc.name, status), status)
    valid_methods = getattr(exc, "valid_methods", None)
    if status == 405 and valid_methods:
        response.headers["Allow"] = ", ".join(valid_methods)
    return response


def auth_error_response() -> Response:
    """401 for a missing or wrong key, as Anthropic answers it."""
    message = "invalid x-api-key: send 'x-api-key: <key>' or 'Authorization: Bearer <key>'"
    return json_response(error_body(message, 401), 401)


def stream_error_body(exc: PowerError | None) -> dict[str, Any]:
    """The body of an ``error`` event in a stream that already began."""
    if exc is None:
        return error_body("internal error while generating", 500)
    return error_body(exc.message, power_error_status(exc))

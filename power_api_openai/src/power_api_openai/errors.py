"""The one place where errors become OpenAI's ``{"error": {...}}`` shape.

Every :class:`~power_core.errors.PowerError` is rendered from its own ``http_status``,
``code``, ``param`` and ``message``; werkzeug's HTTP errors and authentication failures use
the same shape, so the ``openai`` SDK raises its matching exception class for each.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response
from werkzeug.exceptions import HTTPException

from power_core.errors import Cancelled, InvalidModelName, PowerError, ServerBusy
from power_core.server.views import json_response

log = logging.getLogger("power_api_openai")

# Some core codes are spelled differently on OpenAI's wire.
_CODES: dict[str, str | None] = {
    "invalid_request": None,
    "unsupported": "unsupported_parameter",
}


def error_type(status: int) -> str:
    """OpenAI's ``error.type`` for an HTTP status."""
    if status == 429:
        return "rate_limit_exceeded"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_body(
    message: str, *, status: int, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The JSON body of an error response."""
    return {
        "error": {
            "message": message,
            "type": error_type(status),
            "param": param,
            "code": code,
        }
    }


def power_error_status(exc: PowerError) -> int:
    """The status a PowerError is answered with: its own, except where OpenAI differs."""
    if isinstance(exc, InvalidModelName):
        # no model can have an invalid name: OpenAI clients expect "not found" for it
        return 404
    if isinstance(exc, Cancelled):
        # a client that gets an answer did not go away: the model was unloaded under it
        return 503
    return exc.http_status


def power_error_body(exc: PowerError) -> dict[str, Any]:
    """The body of a PowerError, as a response or a mid-stream ``data:`` frame."""
    status = power_error_status(exc)
    code = "model_not_found" if isinstance(exc, InvalidModelName) else exc.code
    if code is not None:
        code = _CODES.get(code, code)
    return error_body(exc.message, status=status, param=exc.param, code=code)


def power_error_response(exc: PowerError) -> Response:
    """Answer a PowerError raised before a response started."""
    status = power_error_status(exc)
    if status >= 500:
        log.warning("%s: %s", type(exc).__name__, exc.message)
    headers = {}
    if isinstance(exc, ServerBusy):
        headers["Retry-After"] = str(exc.retry_after)
    return json_response(power_error_body(exc), status, headers)


def http_error_response(exc: HTTPException) -> Response:
    """Answer werkzeug's errors (bad request, body too large, ...) in the same shape."""
    status = exc.code or 500
    message = exc.description or exc.name
    response = json_response(error_body(message, status=status), status)
    valid_methods = getattr(exc, "valid_methods", None)
    if status == 405 and valid_methods:
        response.headers["Allow"] = ", ".join(valid_methods)
    return response


def auth_error_response() -> Response:
    """401 for a missing or wrong bearer key, as OpenAI answers it."""
    body = error_body(
        "Incorrect API key provided. Send 'Authorization: Bearer <key>' with a configured key.",
        status=401,
        code="invalid_api_key",
    )
    return json_response(body, 401, {"WWW-Authenticate": 'Bearer realm="a3s-power"'})

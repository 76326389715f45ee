"""The one place where errors become Ollama's ``{"error": "..."}`` answers."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response
from werkzeug.exceptions import HTTPException

from power_api_ollama.wire import json_line, json_response
from power_core.errors import PowerError, ServerBusy

log = logging.getLogger("power_api_ollama")


def error_response(exc: PowerError) -> Response:
    """A PowerError as Ollama answers it: its status, ``{"error": message}``."""
    response = json_response({"error": exc.message}, status=exc.http_status)
    if isinstance(exc, ServerBusy):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def error_line(exc: BaseException) -> bytes:
    """The last NDJSON line of a stream that failed after it began."""
    if isinstance(exc, PowerError):
        return json_line({"error": exc.message})
    return json_line({"error": f"internal error: {exc}"})


def log_stream_failure(exc: BaseException) -> None:
    """Record a failure that can only be reported in-band (the status was already sent)."""
    if isinstance(exc, PowerError):
        log.warning("stream ended with an error: %s", exc.message)
    else:
        log.error("stream failed", exc_info=exc)


def register_error_handlers(blueprint: Blueprint) -> None:
    """Map every PowerError and werkzeug HTTP error raised in the blueprint's views."""

    @blueprint.errorhandler(PowerError)
    def power_error(exc: PowerError) -> Response:
        return error_response(exc)

    @blueprint.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        # 400 (unreadable body), 405, 413 (body over max_body_bytes) and the like
        payload: dict[str, Any] = {"error": exc.description or exc.name}
        return json_response(payload, status=exc.code or 500)

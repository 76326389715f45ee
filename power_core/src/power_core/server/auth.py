"""Bearer keys: with ``api_keys`` configured, every route but the liveness ones needs one,
sent as ``Authorization: Bearer <key>`` (OpenAI's and Ollama's clients) or as ``x-api-key:
<key>`` (Anthropic's).

The check runs once, before any route of any surface, so an API surface added by a plugin
is covered too. It raises :class:`~power_core.errors.Unauthorized`, which each surface's
error handler renders in its own API's shape (OpenAI's ``invalid_api_key`` object under
``/v1``, Ollama's ``{"error": ...}`` under ``/api``); the core's routes use the latter.
"""

from __future__ import annotations

import hmac

from flask import Flask, request

from power_core.errors import Unauthorized

#: routes that answer without a key: whether the server is up, for load balancers and
#: health checks (they change nothing, and with keys required /health names no model)
OPEN_ENDPOINTS = frozenset({"root", "health"})


def bearer_key(header: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header."""
    if not header:
        return None
    scheme, _, key = header.partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


def key_accepted(keys: tuple[str, ...], header: str | None) -> bool:
    """Any header passes when no keys are configured; otherwise the bearer must match one."""
    if not keys:
        return True
    given = bearer_key(header)
    if given is None:
        return False
    # compare against every key, in constant time, so timing reveals nothing
    matches = [hmac.compare_digest(given.encode(), key.encode()) for key in keys]
    return any(matches)


def require_api_keys(app: Flask, keys: tuple[str, ...]) -> None:
    """Refuse every request to ``app`` without one of ``keys`` (none: accept all)."""
    if not keys:
        return

    @app.before_request
    def check_key() -> None:
        # a CORS preflight carries no credentials; flask-cors answers it
        if request.method == "OPTIONS" or request.endpoint in OPEN_ENDPOINTS:
            return
        x_api_key = request.headers.get("x-api-key")
        if not key_accepted(keys, request.headers.get("Authorization")) and not (
            x_api_key and key_accepted(keys, f"Bearer {x_api_key}")
        ):
            raise Unauthorized(
                "Incorrect API key provided. Send 'Authorization: Bearer <key>' with a "
                "configured key."
            )

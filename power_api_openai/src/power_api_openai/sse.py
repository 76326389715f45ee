"""Server-sent events as OpenAI streams them: ``data: {json}`` frames, then ``data: [DONE]``.

A comment frame (``: ping``) keeps the connection busy while a long prompt is read. An
error after the stream began can no longer change the status code, so it travels as a
``data: {"error": {...}}`` frame (the ``openai`` SDK raises it as an ``APIError``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Response

from power_api_openai.errors import error_body, power_error_body
from power_core.errors import PowerError
from power_core.server.streams import guarded_stream
from power_core.server.views import compact_json

log = logging.getLogger("power_api_openai")

PING = ": ping\n\n"
DONE = "data: [DONE]\n\n"


def data_frame(payload: Any) -> str:
    """One ``data:`` frame carrying ``payload`` as compact JSON."""
    return "data: " + compact_json(payload) + "\n\n"


def event_frame(event: dict[str, Any]) -> str:
    """One SSE frame naming its event, as the Responses API streams them."""
    return f"event: {event['type']}\ndata: {compact_json(event)}\n\n"


def event_stream(
    frames: Iterator[str],
    cancel: Callable[[], None],
    *,
    end: str | None = DONE,
    error_frames: Callable[[dict[str, Any]], Iterable[str]] | None = None,
) -> Iterator[str]:
    """Frames, then ``end`` (``[DONE]``); an error becomes the ``error_frames`` of its body
    (by default one ``data:`` frame of it) and nothing follows them.

    ``cancel`` runs however the stream ends: when the client disconnects, the server closes
    this generator, and ``cancel`` stops the generation so its sequence is freed at once.
    """
    errors = error_frames or _error_frame

    def in_band(exc: PowerError | None) -> Iterable[str]:
        if exc is None:
            return errors(error_body("internal error while generating", status=500))
        return errors(power_error_body(exc))

    return guarded_stream(frames, cancel, in_band, log, end=() if end is None else (end,))


def _error_frame(body: dict[str, Any]) -> list[str]:
    return [data_frame(body)]


def sse_response(
    frames: Iterator[str],
    cancel: Callable[[], None],
    *,
    end: str | None = DONE,
    error_frames: Callable[[dict[str, Any]], Iterable[str]] | None = None,
) -> Response:
    """A streaming ``text/event-stream`` response of :func:`event_stream`."""
    return Response(
        event_stream(frames, cancel, end=end, error_frames=error_frames),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

"""Ollama's wire conventions: request field readers, timestamps, NDJSON framing.

Ollama writes times as RFC 3339 with nanoseconds and every duration as integer
nanoseconds; streams are NDJSON (one JSON object per line), single answers plain JSON.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Response

from power_api_ollama.options import json_text
from power_core.config import parse_duration
from power_core.errors import InvalidRequest
from power_core.json_kinds import json_kind
from power_core.server.views import compact_json

NDJSON = "application/x-ndjson"
JSON = "application/json; charset=utf-8"


# ------------------------------------------------------------------------------ time


#: the last second formatted, with its text: a stream stamps every token, many per second
_last_second: tuple[int, str] = (-1, "")


def _format_ns(epoch_ns: int) -> str:
    global _last_second
    seconds, fraction = divmod(epoch_ns, 1_000_000_000)
    cached, stamp = _last_second
    if cached != seconds:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = (seconds, stamp)  # one tuple: threads never see a torn pair
    return f"{stamp}.{fraction:09d}Z"


def now_rfc3339() -> str:
    """The current UTC time, RFC 3339 with nanoseconds (Ollama's ``created_at``)."""
    return _format_ns(time.time_ns())


def rfc3339(moment: datetime | float) -> str:
    """A datetime (naive ones are taken as UTC) or epoch seconds, RFC 3339 with nanoseconds."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
        epoch_ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + (
            delta.microseconds * 1_000
        )
        return _format_ns(epoch_ns)
    return _format_ns(int(moment * 1_000_000_000))


# ------------------------------------------------------------------------------ framing


def json_line(payload: dict[str, Any]) -> bytes:
    """One NDJSON line."""
    return (compact_json(payload) + "\n").encode()


def json_response(payload: dict[str, Any], status: int = 200) -> Response:
    """A single JSON answer (``stream: false`` and every non-streaming route)."""
    return Response(compact_json(payload), status=status, content_type=JSON)


def ndjson_response(lines: Iterable[bytes]) -> Response:
    """A streamed answer; gevent's server writes (and flushes) every yielded line at once."""
    response = Response(lines, content_type=NDJSON)
    # Proxies such as nginx would otherwise buffer the stream and defeat per-token delivery.
    response.headers["X-Accel-Buffering"] = "no"
    return response


def stream_lines(payloads: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """Encode each payload as one NDJSON line."""
    for payload in payloads:
        yield json_line(payload)


# ------------------------------------------------------------------------------ fields


def wrong_type(key: str, expected: str, value: Any) -> InvalidRequest:
    """The 400 for a field of the wrong JSON type, naming the field."""
    return InvalidRequest(f"'{key}' must be {expected}, not {json_kind(value)}", param=key)


def model_name(body: dict[str, Any]) -> str:
    """``model`` (or Ollama's older ``name``); a 400 when missing or empty."""
    value = body.get("model")
    if value is None or value == "":
        value = body.get("name")
    if value is None or value == "":
        raise InvalidRequest("model is required", param="model")
    if not isinstance(value, str):
        raise wrong_type("model", "a string", value)
    return value


def opt_str(body: dict[str, Any], key: str) -> str | None:
    """An optional string field (``null`` counts as absent)."""
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    raise wrong_type(key, "a string", value)


def opt_bool(body: dict[str, Any], key: str, default: bool) -> bool:
    """An optional boolean field."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    raise wrong_type(key, "true or false", value)


def opt_int(body: dict[str, Any], key: str) -> int | None:
    """An optional integer field (integral floats such as ``3.0`` are accepted)."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise wrong_type(key, "an integer", value)
    return value


def opt_list(body: dict[str, Any], key: str) -> list[Any] | None:
    """An optional array field."""
    value = body.get(key)
    if value is None or isinstance(value, list):
        return value
    raise wrong_type(key, "an array", value)


def opt_object(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    """An optional object field."""
    value = body.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise wrong_type(key, "an object", value)


def wants_stream(body: dict[str, Any]) -> bool:
    """Ollama streams unless ``stream`` is ``false``."""
    return opt_bool(body, "stream", True)


def keep_alive(body: dict[str, Any]) -> float | None:
    """``keep_alive`` in seconds (``"5m"``, ``300``, ``"-1"``); ``None`` when not given."""
    value = body.get("keep_alive")
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        raise InvalidRequest(
            f"invalid keep_alive: expected a duration like '5m' or seconds, got {json_text(value)}",
            param="keep_alive",
        ) from None

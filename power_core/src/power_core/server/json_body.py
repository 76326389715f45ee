"""Reading a request body as a JSON object, with client mistakes as ``InvalidRequest``."""

from __future__ import annotations

import json
import re
from typing import Any

from power_core.errors import InvalidRequest
from power_core.json_kinds import json_kind

MAX_JSON_DEPTH = 64


def nested_deeper_than(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a parsed JSON value nests arrays and objects more than ``limit`` deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def parse_json_object(
    raw: bytes, *, allow_empty: bool = False, what: str = "request body", param: str | None = None
) -> dict[str, Any]:
    """Parse ``raw`` as one JSON object; bad JSON, other types or deep nesting are 400s.

    ``what`` names the text in messages and ``param`` in the error, for JSON that arrives
    inside a field (a tool call's ``arguments``)."""
    if not raw.strip():
        if allow_empty:
            return {}
        raise InvalidRequest(f"{what} is empty; expected a JSON object", param=param)
    try:
        value = json.loads(raw)
    except RecursionError:
        raise InvalidRequest(f"{what} is nested too deeply", param=param) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest(f"{what} is not valid JSON: {exc}", param=param) from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{what} must be a JSON object, not {json_kind(value)}", param=param)
    if nested_deeper_than(value):
        raise InvalidRequest(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels", param=param)
    if _SURROGATE_ESCAPE.search(raw):
        value = _without_lone_surrogates(value)
    return value


#: a ``\uD800``-``\uDFFF`` escape: JSON may spell half of a UTF-16 pair on its own
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(value: Any) -> Any:
    """``value`` with every lone surrogate (half of a UTF-16 pair, which no UTF-8 text can
    hold) replaced by U+FFFD, as Go's JSON decoder, and so Ollama, reads it."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {
            _without_lone_surrogates(key): _without_lone_surrogates(item)
            for key, item in value.items()
        }
    return value

"""Reading a request body as a JSON object, with client mistakes as ``InvalidRequest``."""

from __future__ import annotations

import json
from typing import Any

from power_core.errors import InvalidRequest

MAX_JSON_DEPTH = 64


def _depth_exceeds(value: Any, limit: int) -> bool:
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
        raise InvalidRequest(
            f"{what} must be a JSON object, not {type(value).__name__}", param=param
        )
    if _depth_exceeds(value, MAX_JSON_DEPTH):
        raise InvalidRequest(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels", param=param)
    return value

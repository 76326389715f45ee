"""What a JSON value is, in JSON's words, for error messages about a client's JSON."""

from __future__ import annotations

from typing import Any


def json_kind(value: Any) -> str:
    """``"null"``, ``"a boolean"``, ``"a number"``, ``"a string"``, ``"an array"`` or
    ``"an object"``: what ``value`` (as ``json.loads`` returns it) is in JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"

"""A Responses request that continues an earlier response (``previous_response_id``): its
body with the earlier conversation before its own input, over HTTP and over WebSocket."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from power_api_openai.response_ids import item_id
from power_core.errors import InvalidRequest

#: the id prefix OpenAI gives each kind of input item
_ITEM_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}


class PreviousResponseNotFound(InvalidRequest):
    """``previous_response_id`` names no response this server (or connection) holds."""

    code = "previous_response_not_found"


@dataclass
class ContinuedBody:
    """A request body ready to parse, and what storing its response needs."""

    body: dict[str, Any]
    #: the request's own input items, each with an id
    input_items: list[Any] = field(default_factory=list)
    #: the earlier conversation then the input items: what the response continues
    conversation: list[Any] = field(default_factory=list)
    #: the response it continues
    continues: str | None = None


def continued_body(
    body: dict[str, Any], earlier_of: Callable[[str], list[Any] | None]
) -> ContinuedBody:
    """``body`` without ``previous_response_id``, its ``input`` after the conversation
    ``earlier_of`` gives for that id (``previous_response_not_found`` when none)."""
    body = dict(body)
    continues = body.pop("previous_response_id", None)
    new_items = with_ids(body.get("input"))
    if continues is None:
        return ContinuedBody(body, new_items or [], new_items or [])
    earlier = earlier_of(continues) if isinstance(continues, str) else None
    if earlier is None:
        raise PreviousResponseNotFound(
            f"Previous response with id {continues!r} not found.", param="previous_response_id"
        )
    if new_items is None:
        if body.get("input") is not None:
            return ContinuedBody(body, continues=continues)  # the parser says what is wrong
        new_items = []
    conversation = [*earlier, *new_items]
    return ContinuedBody({**body, "input": conversation}, new_items, conversation, continues)


def with_ids(value: Any) -> list[Any] | None:
    """``input`` as a list of items as OpenAI lists them, each with an id (a string is one
    user message); ``None`` when it is neither a string nor a list."""
    if isinstance(value, str):
        value = [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list):
        return None
    return [_listed(item) if isinstance(item, dict) else item for item in value]


def _listed(item: dict[str, Any]) -> dict[str, Any]:
    """An input item with an id and a status, a message's text as a content part."""
    kind = item.get("type") or ("message" if "role" in item else None)
    prefix = _ITEM_PREFIXES.get(kind) if isinstance(kind, str) else None
    if prefix is None:
        return item  # not an item this server reads: the parser says so
    listed = {"id": item_id(prefix), **item}
    if kind == "message":
        listed["type"] = "message"
        content = listed.get("content")
        if isinstance(content, str):
            part = "output_text" if listed.get("role") == "assistant" else "input_text"
            listed["content"] = [{"type": part, "text": content}]
    if kind in ("message", "function_call", "function_call_output"):
        listed.setdefault("status", "completed")
    return listed

"""``/v1/conversations``: OpenAI's Conversations API on the conversations this server keeps
on disk (:mod:`power_api_openai.conversation_store`). A response created with
``conversation`` reads its items before its own input and adds its input and output items
to it (:mod:`power_api_openai.responses_continued`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from power_api_openai.conversation_store import ConversationStore
from power_api_openai.item_pages import item_page
from power_api_openai.responses_continued import (
    KeptResponses,
    refuse_duplicates,
    resolved_references,
    with_ids,
)
from power_api_openai.responses_request import parse_input, parse_metadata
from power_api_openai.validation import Fields
from power_core.errors import InvalidRequest

#: the most items one request may add, as OpenAI's
MAX_ITEMS_ADDED = 20


def create(store: ConversationStore, body: dict[str, Any], kept: KeptResponses) -> dict[str, Any]:
    """``POST /v1/conversations``: a new conversation, with its first ``items`` (an
    ``item_reference`` among them names an item of a kept response)."""
    fields = Fields(body)
    metadata = parse_metadata(fields)
    items = _items(fields, {}, kept, store.max_bytes, required=False)
    return store.create(items, metadata).public()


def retrieve(store: ConversationStore, conversation_id: str) -> dict[str, Any]:
    return store.get(conversation_id).public()


def update(store: ConversationStore, conversation_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /v1/conversations/{id}``: replace its ``metadata``."""
    fields = Fields(body)
    if not fields.has("metadata"):
        raise InvalidRequest("Missing required parameter: 'metadata'.", param="metadata")
    metadata = parse_metadata(fields)
    return store.set_metadata(conversation_id, metadata).public()


def delete(store: ConversationStore, conversation_id: str) -> dict[str, Any]:
    store.delete(conversation_id)
    return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}


def add_items(
    store: ConversationStore, conversation_id: str, body: dict[str, Any], kept: KeptResponses
) -> dict[str, Any]:
    """``POST /v1/conversations/{id}/items``: add up to 20 items at its end (an
    ``item_reference`` names one of its items or of a kept response)."""
    held = store.get(conversation_id).held  # a 404 before a 400 about the body
    items = _items(Fields(body), held, kept, store.max_bytes, required=True)
    added = store.append(conversation_id, items, limit_param="items")
    return {
        "object": "list",
        "data": added,
        "first_id": added[0]["id"] if added else None,
        "last_id": added[-1]["id"] if added else None,
        "has_more": False,
    }


def list_items(
    store: ConversationStore, conversation_id: str, query: dict[str, Any]
) -> dict[str, Any]:
    """``GET /v1/conversations/{id}/items``: one page of its items."""
    conversation = store.get(conversation_id)
    return item_page(conversation.items, query, "this conversation", conversation.positions)


def retrieve_item(store: ConversationStore, conversation_id: str, item: str) -> dict[str, Any]:
    return store.get(conversation_id).item(item)


def delete_item(store: ConversationStore, conversation_id: str, item: str) -> dict[str, Any]:
    """``DELETE /v1/conversations/{id}/items/{item_id}``: the conversation, without it."""
    return store.delete_item(conversation_id, item).public()


def _items(
    fields: Fields,
    held: Mapping[str, Any],
    kept: KeptResponses,
    limit_bytes: int,
    *,
    required: bool,
) -> list[dict[str, Any]]:
    """``items``: at most 20 input items, read as a response's ``input`` would read them
    (so that a response can continue the conversation), each with an id; checked before
    any ``item_reference`` among them is looked up."""
    given = fields.array("items", required=required) or []
    if len(given) > MAX_ITEMS_ADDED:
        raise InvalidRequest(
            f"'items' may add at most {MAX_ITEMS_ADDED} items at a time; got {len(given)}.",
            param="items",
        )
    if required and not given:
        raise InvalidRequest("'items' must contain at least one item.", param="items")
    refuse_duplicates(given, held, "items")
    value = resolved_references(given, held, kept, limit_bytes, "items")
    parse_input(value, "items")
    listed = with_ids(value)
    assert listed is not None  # a list
    return listed

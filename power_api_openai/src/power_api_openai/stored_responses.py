"""``GET``/``DELETE /v1/responses/{id}``, ``/input_items`` and ``/cancel``: the responses
the server keeps (:mod:`power_api_openai.response_store`)."""

from __future__ import annotations

from typing import Any

from power_api_openai.item_pages import item_page
from power_api_openai.response_store import ResponseStore
from power_core.errors import InvalidRequest, NotFound


class ResponseNotFound(NotFound):
    """No response of that id is kept (never made, made with ``store: false``, deleted,
    or forgotten to make room)."""


def _not_found(response_id: str) -> ResponseNotFound:
    return ResponseNotFound(
        f"Response with id '{response_id[:80]}' not found: this server keeps the responses "
        "made with store true until it needs the room (stored_responses_bytes).",
        param="response_id",
    )


def retrieve(store: ResponseStore, response_id: str) -> dict[str, Any]:
    response = store.response(response_id)
    if response is None:
        raise _not_found(response_id)
    return response


def delete(store: ResponseStore, response_id: str) -> dict[str, Any]:
    if not store.delete(response_id):
        raise _not_found(response_id)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


def cancel(store: ResponseStore, response_id: str) -> dict[str, Any]:
    retrieve(store, response_id)
    raise InvalidRequest(
        "Only responses created with background set to true can be cancelled; this server "
        "runs none in the background."
    )


def input_items(store: ResponseStore, response_id: str, query: dict[str, Any]) -> dict[str, Any]:
    """One page of a response's own input items (:func:`item_page`)."""
    items = store.input_items(response_id)
    if items is None:
        raise _not_found(response_id)
    return item_page(items, query, "this response")

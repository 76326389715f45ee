"""``GET``/``DELETE /v1/responses/{id}``, ``/input_items`` and ``/cancel``: the responses
the server keeps in memory (:mod:`power_api_openai.response_store`)."""

from __future__ import annotations

from typing import Any

from power_api_openai.response_store import ResponseStore
from power_api_openai.validation import Fields
from power_core.errors import InvalidRequest, NotFound

#: the most input items one page lists, as OpenAI's
MAX_PAGE = 100


class ResponseNotFound(NotFound):
    """No response of that id is kept (never made, made with ``store: false``, deleted,
    forgotten to make room, or made before the server started)."""


def _not_found(response_id: str) -> ResponseNotFound:
    return ResponseNotFound(
        f"Response with id '{response_id}' not found: this server keeps responses in memory "
        "only (not those made with store false), until it restarts or needs the room.",
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
    """One page of a response's own input items: ``limit`` (1-100, default 20), ``order``
    (``desc``, the default, or ``asc``), after the item ``after``."""
    items = store.input_items(response_id)
    if items is None:
        raise _not_found(response_id)
    fields = Fields(query)
    limit = _integer(query.get("limit"), "limit") or 20
    order = fields.choice("order", ("asc", "desc"), "desc")
    after = fields.string("after")
    if order == "desc":
        items = items[::-1]
    if after is not None:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise InvalidRequest(
                f"No input item with id '{after}' in this response.", param="after"
            )
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None,
        "has_more": len(items) > len(page),
    }


def _integer(value: Any, name: str) -> int | None:
    """A query's integer (query values are text)."""
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if not 1 <= number <= MAX_PAGE:
        raise InvalidRequest(f"'{name}' must be an integer from 1 to {MAX_PAGE}", param=name)
    return number

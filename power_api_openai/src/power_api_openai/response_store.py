"""Responses kept in the server's memory, so that ``previous_response_id`` continues them
and ``GET``/``DELETE /v1/responses/{id}`` and ``/input_items`` find them, as OpenAI keeps
responses created with ``store`` true (its default). Nothing is written to disk: a restart
forgets them, and the oldest go first once they take :data:`STORE_BYTES` in all."""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from power_core.server.views import compact_json

log = logging.getLogger("power_api_openai")

#: the memory stored responses may take, as compact JSON (their conversations included)
STORE_BYTES = 64 << 20


@dataclass(frozen=True)
class StoredResponse:
    """One response as compact JSON: the response object and the whole conversation up to
    its answer, in which the response's own input items are ``conversation[inputs]``; the
    ids of its own items (input and output), for ``item_reference``."""

    response: bytes
    conversation: bytes
    inputs: slice
    own_item_ids: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.response) + len(self.conversation)


class ResponseStore:
    """Responses by id, the most recently used last, within ``max_bytes`` and, if given,
    ``max_count`` responses (a WebSocket connection keeps its own few this way)."""

    def __init__(self, max_bytes: int = STORE_BYTES, max_count: int | None = None) -> None:
        self._max_bytes = max_bytes
        self._max_count = max_count
        self._stored: OrderedDict[str, StoredResponse] = OrderedDict()
        self._bytes = 0
        #: item id -> the response that brought the item (its input or its output)
        self._item_owners: dict[str, str] = {}

    def put(self, response: dict[str, Any], conversation: list[Any], inputs: slice) -> bool:
        """Store a finished response, its conversation and where its own input items are
        in it; ``False`` (logged) when it alone is over the limit."""
        own = conversation[inputs.start :]
        stored = StoredResponse(
            compact_json(response).encode(),
            compact_json(conversation).encode(),
            inputs,
            tuple(
                item["id"]
                for item in own
                if isinstance(item, dict) and isinstance(item.get("id"), str)
            ),
        )
        if stored.size > self._max_bytes:
            log.info(
                "a response of %d bytes was not kept (at most %d)", stored.size, self._max_bytes
            )
            return False
        self.delete(response["id"])
        self._stored[response["id"]] = stored
        self._bytes += stored.size
        for item_id in stored.own_item_ids:
            self._item_owners[item_id] = response["id"]
        while self._bytes > self._max_bytes or (
            self._max_count is not None and len(self._stored) > self._max_count
        ):
            self.delete(next(iter(self._stored)))
        return True

    def _get(self, response_id: str) -> StoredResponse | None:
        stored = self._stored.get(response_id)
        if stored is not None:
            self._stored.move_to_end(response_id)
        return stored

    def response(self, response_id: str) -> dict[str, Any] | None:
        stored = self._get(response_id)
        return None if stored is None else json.loads(stored.response)

    def input_items(self, response_id: str) -> list[Any] | None:
        stored = self._get(response_id)
        if stored is None:
            return None
        items: list[Any] = json.loads(stored.conversation)
        return items[stored.inputs]

    def conversation(self, response_id: str) -> list[Any] | None:
        stored = self._get(response_id)
        return None if stored is None else json.loads(stored.conversation)

    def item(self, item_id: str) -> dict[str, Any] | None:
        """The item of that id, from the kept response that brought it."""
        owner = self._item_owners.get(item_id)
        conversation = None if owner is None else self.conversation(owner)
        for item in conversation or ():
            if isinstance(item, dict) and item.get("id") == item_id:
                return item
        return None

    def delete(self, response_id: str) -> bool:
        stored = self._stored.pop(response_id, None)
        if stored is None:
            return False
        self._bytes -= stored.size
        for item_id in stored.own_item_ids:
            if self._item_owners.get(item_id) == response_id:
                del self._item_owners[item_id]
        return True


def _ids_of(items: list[Any]) -> list[str]:
    return [
        item["id"] for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)
    ]

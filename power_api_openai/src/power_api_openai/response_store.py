"""Kept responses, so that ``previous_response_id`` continues them, ``item_reference``
finds their items, and ``GET``/``DELETE /v1/responses/{id}`` and ``/input_items`` find them,
as OpenAI keeps responses created with ``store`` true (its default).

A :class:`ResponseStore` holds the index (ids, sizes, each response's own item ids, the
most recently used last) and evicts the least recently used past its byte (and count)
bound; a shelf holds the bytes. The server's store is on disk
(:class:`~power_api_openai.response_shelf.DiskShelf`: responses outlive a restart); a
WebSocket connection's own few, ``store: false`` ones included, stay in memory
(:class:`MemoryShelf`) and go with the connection.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from power_core.errors import PowerError
from power_core.server.views import compact_json

log = logging.getLogger("power_api_openai")

#: the memory a store in memory may take by default (with the responses' conversations)
STORE_BYTES = 64 << 20
#: the memory every WebSocket connection's own kept responses may take together
CONNECTIONS_BYTES = 256 << 20


class ByteBudget:
    """Bytes several stores share (the WebSocket connections' own), so that their sum is
    bounded however many connections there are."""

    def __init__(self, limit: int = CONNECTIONS_BYTES) -> None:
        self.limit = limit
        self.used = 0


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


@dataclass(frozen=True)
class ShelvedEntry:
    """What the index keeps of a response a shelf holds."""

    response_id: str
    size: int
    own_item_ids: tuple[str, ...]


class Shelf(Protocol):
    """Where a store's responses lie."""

    def save(self, response_id: str, stored: StoredResponse) -> int | None:
        """Keep ``stored``; the bytes it takes there, or ``None`` (logged) when it could
        not be kept."""
        ...

    def load(self, response_id: str) -> StoredResponse | None:
        """The response, or ``None`` when the shelf has none (or a damaged one, which it
        removes); a :class:`PowerError` when it cannot be read now."""
        ...

    def remove(self, response_id: str) -> None:
        """Let the response go; a :class:`PowerError` when it could not be."""
        ...

    def entries(self) -> Iterable[ShelvedEntry]:
        """What the shelf holds already, the least recently used first."""
        ...

    def size_of(self, response_id: str, stored: StoredResponse) -> int:
        """The bytes ``stored`` takes on the shelf."""
        ...


class MemoryShelf:
    """Responses in this process's memory."""

    def __init__(self) -> None:
        self._held: dict[str, StoredResponse] = {}

    def save(self, response_id: str, stored: StoredResponse) -> int | None:
        self._held[response_id] = stored
        return stored.size

    def load(self, response_id: str) -> StoredResponse | None:
        return self._held.get(response_id)

    def remove(self, response_id: str) -> None:
        self._held.pop(response_id, None)

    def entries(self) -> Iterable[ShelvedEntry]:
        return ()

    def size_of(self, response_id: str, stored: StoredResponse) -> int:
        return stored.size


class ResponseStore:
    """Responses by id, the most recently used last, within ``max_bytes`` and, if given,
    ``max_count`` responses (a WebSocket connection keeps its own few this way)."""

    def __init__(
        self,
        max_bytes: int = STORE_BYTES,
        max_count: int | None = None,
        shelf: Shelf | None = None,
        budget: ByteBudget | None = None,
    ) -> None:
        self._max_bytes = max_bytes
        self._max_count = max_count
        self._budget = budget
        self._shelf: Shelf = shelf if shelf is not None else MemoryShelf()
        self._index: OrderedDict[str, ShelvedEntry] = OrderedDict()
        self._bytes = 0
        #: item id -> the response that brought the item (its input or its output)
        self._item_owners: dict[str, str] = {}
        for entry in self._shelf.entries():
            self._add(entry)
        self._evict()

    def put(self, response: dict[str, Any], conversation: list[Any], inputs: slice) -> bool:
        """Store a finished response, its conversation and where its own input items are
        in it; ``False`` (logged) when it alone is over the limit or cannot be kept."""
        stored = StoredResponse(
            compact_json(response).encode(),
            compact_json(conversation).encode(),
            inputs,
            tuple(_ids_of(conversation[inputs.start :])),
        )
        if stored.size > self._max_bytes:
            log.info(
                "a response of %d bytes was not kept (at most %d)", stored.size, self._max_bytes
            )
            return False
        response_id = response["id"]
        self.delete(response_id)
        if not self._within_budget(stored.size):
            return False
        taken = self._shelf.save(response_id, stored)
        if taken is None:
            return False
        self._add(ShelvedEntry(response_id, taken, stored.own_item_ids))
        self._evict()
        return True

    def _within_budget(self, size: int) -> bool:
        """Room in the shared budget for ``size`` more bytes, made by forgetting this
        store's own oldest; ``False`` (logged) when the others hold the rest."""
        budget = self._budget
        if budget is None:
            return True
        while self._index and budget.used + size > budget.limit:
            self.delete(next(iter(self._index)))
        if budget.used + size > budget.limit:
            log.info(
                "a response of %d bytes was not kept: the connections keep %d of %d bytes",
                size,
                budget.used,
                budget.limit,
            )
            return False
        return True

    def _add(self, entry: ShelvedEntry) -> None:
        self._index[entry.response_id] = entry
        self._bytes += entry.size
        if self._budget is not None:
            self._budget.used += entry.size
        for item_id in entry.own_item_ids:
            self._item_owners[item_id] = entry.response_id

    def _evict(self) -> None:
        while self._bytes > self._max_bytes or (
            self._max_count is not None and len(self._index) > self._max_count
        ):
            oldest = next(iter(self._index))
            try:
                self.delete(oldest)
            except PowerError as exc:  # counted no more: the disk holds it all the same
                log.warning("kept response %s was not removed: %s", oldest, exc.message)
                self._forget(oldest)

    def _get(self, response_id: str) -> StoredResponse | None:
        """The response if the index holds it, or the shelf does (another server on the
        same home kept it: it joins the index)."""
        known = response_id in self._index
        stored = self._shelf.load(response_id)
        if stored is None:
            if known:  # gone from under the index (removed, or damaged and removed)
                self._forget(response_id)
            return None
        if known:
            self._index.move_to_end(response_id)
        else:
            size = self._shelf.size_of(response_id, stored)
            self._add(ShelvedEntry(response_id, size, stored.own_item_ids))
            self._evict()
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

    def items(self, item_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The items of those ids found in kept responses (their inputs and outputs), each
        response's conversation read once."""
        by_owner: dict[str, set[str]] = {}
        for item_id in item_ids:
            owner = self._item_owners.get(item_id)
            if owner is not None:
                by_owner.setdefault(owner, set()).add(item_id)
        found: dict[str, dict[str, Any]] = {}
        for owner, wanted in by_owner.items():
            for item in self.conversation(owner) or ():
                if isinstance(item, dict) and item.get("id") in wanted:
                    found[item["id"]] = item
        return found

    def clear(self) -> None:
        """Forget every response (a WebSocket connection's, when it ends)."""
        for response_id in list(self._index):
            self.delete(response_id)

    def delete(self, response_id: str) -> bool:
        """Let a response go, from the shelf first: a :class:`PowerError` when the shelf
        could not, and the response stays."""
        if response_id not in self._index and self._get(response_id) is None:
            return False
        self._shelf.remove(response_id)
        self._forget(response_id)
        return True

    def _forget(self, response_id: str) -> None:
        entry = self._index.pop(response_id, None)
        if entry is None:
            return
        self._bytes -= entry.size
        if self._budget is not None:
            self._budget.used -= entry.size
        for item_id in entry.own_item_ids:
            if self._item_owners.get(item_id) == response_id:
                del self._item_owners[item_id]


def _ids_of(items: list[Any]) -> list[str]:
    return [
        item["id"] for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)
    ]

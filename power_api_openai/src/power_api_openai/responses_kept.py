"""The responses one WebSocket connection keeps, so that ``previous_response_id`` can
continue them (nothing is stored beyond the connection)."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from power_core.server.views import compact_json

#: responses a connection keeps: its latest in each of a few lanes (``stream_id``), which
#: may fork from one another
MAX_KEPT = 16


class KeptResponses:
    """A connection's recent responses by id, each the conversation up to its answer as
    compact JSON (a fraction of what the parsed items take), the most recent last: at most
    :data:`MAX_KEPT` of them and ``max_bytes`` in all, the oldest going first."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._kept: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0

    def items(self, response_id: str) -> list[Any] | None:
        """The items of a kept response, or ``None``."""
        kept = self._kept.get(response_id)
        if kept is None:
            return None
        self._kept.move_to_end(response_id)
        items: list[Any] = json.loads(kept)
        return items

    def keep(self, response_id: str, items: list[Any]) -> bool:
        """Keep a response's conversation; ``False`` when it alone is over the limit."""
        kept = compact_json(items).encode()
        if len(kept) > self._max_bytes:
            return False
        self._kept[response_id] = kept
        self._bytes += len(kept)
        while self._bytes > self._max_bytes or len(self._kept) > MAX_KEPT:
            _, oldest = self._kept.popitem(last=False)
            self._bytes -= len(oldest)
        return True

    def forget(self, response_id: str) -> None:
        kept = self._kept.pop(response_id, None)
        if kept is not None:
            self._bytes -= len(kept)

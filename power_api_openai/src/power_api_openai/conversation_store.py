"""Conversations kept on disk (OpenAI's Conversations API): one JSON file each under
``<home>/conversations/``, so they outlive a restart, as OpenAI's do.

A file is replaced whole on every change: written aside, flushed to disk, then renamed
over the old one, so a crash leaves either the old conversation or the new one, never a
torn file. Changes to one conversation are serialised by one lock (a gevent lock in the
server), and each reads the file afresh, so two responses finishing together both land.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from power_api_openai.response_ids import item_id
from power_core.errors import NotFound, PowerError
from power_core.server.views import compact_json

#: the ids this store makes (``conv_`` and 48 hex digits); anything else is not found
_CONVERSATION_ID = re.compile(r"conv_[0-9a-f]{48}")


class ConversationNotFound(NotFound):
    """No conversation of that id is kept (never made, deleted, or not an id at all)."""

    def __init__(self, conversation_id: str, param: str = "conversation_id") -> None:
        shown = conversation_id if len(conversation_id) <= 80 else conversation_id[:80] + "..."
        super().__init__(f"Conversation with id '{shown}' not found.", param=param)


class ItemNotFound(NotFound):
    """No item of that id is in the conversation."""


@dataclass
class Conversation:
    """A conversation as its file holds it."""

    id: str
    created_at: int
    metadata: dict[str, str] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)

    def item(self, item: str) -> dict[str, Any]:
        """The item of that id, or :class:`ItemNotFound`."""
        for each in self.items:
            if each.get("id") == item:
                return each
        raise ItemNotFound(
            f"Item with id '{item[:80]}' not found in conversation {self.id}.", param="item_id"
        )

    def public(self) -> dict[str, Any]:
        """The ``conversation`` object of the API (its items are listed apart)."""
        return {
            "id": self.id,
            "object": "conversation",
            "created_at": self.created_at,
            "metadata": self.metadata,
        }


class ConversationStore:
    """Conversations in ``folder``; every method reads or replaces one file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()

    def create(self, items: list[dict[str, Any]], metadata: dict[str, str]) -> Conversation:
        conversation = Conversation(item_id("conv"), int(time.time()), metadata, items)
        with self._lock:
            self._write(conversation)
        return conversation

    def get(self, conversation_id: str, param: str = "conversation_id") -> Conversation:
        """The conversation, or :class:`ConversationNotFound` naming ``param``."""
        path = self._path(conversation_id, param)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ConversationNotFound(conversation_id, param) from None
        except OSError as exc:
            raise PowerError(f"cannot read conversation {conversation_id}: {exc}") from exc
        try:
            data = json.loads(raw)
            return Conversation(data["id"], data["created_at"], data["metadata"], data["items"])
        except (ValueError, KeyError, TypeError) as exc:
            # written only by this store, atomically: a damaged file is the disk's doing
            raise PowerError(f"conversation file {path} is damaged: {exc}") from exc

    def set_metadata(self, conversation_id: str, metadata: dict[str, str]) -> Conversation:
        with self._lock:
            conversation = self.get(conversation_id)
            conversation.metadata = metadata
            self._write(conversation)
        return conversation

    def append(
        self, conversation_id: str, items: list[dict[str, Any]], param: str = "conversation_id"
    ) -> list[dict[str, Any]]:
        """Add ``items`` at the end; an item whose id the conversation already holds gets
        a new one. Returns the items as added."""
        with self._lock:
            conversation = self.get(conversation_id, param)
            added = with_unique_ids(items, {item.get("id") for item in conversation.items})
            conversation.items.extend(added)
            self._write(conversation)
        return added

    def delete_item(self, conversation_id: str, item: str) -> Conversation:
        with self._lock:
            conversation = self.get(conversation_id)
            conversation.item(item)
            conversation.items = [each for each in conversation.items if each.get("id") != item]
            self._write(conversation)
        return conversation

    def delete(self, conversation_id: str) -> None:
        path = self._path(conversation_id, "conversation_id")
        with self._lock:
            try:
                path.unlink()
            except FileNotFoundError:
                raise ConversationNotFound(conversation_id) from None

    def _path(self, conversation_id: str, param: str) -> Path:
        # only ids this store makes name a file: nothing else can reach outside the folder
        if not _CONVERSATION_ID.fullmatch(conversation_id):
            raise ConversationNotFound(conversation_id, param)
        return self.folder / f"{conversation_id}.json"

    def _write(self, conversation: Conversation) -> None:
        """Replace the conversation's file atomically and durably."""
        path = self._path(conversation.id, "conversation_id")
        data = compact_json(
            {
                "id": conversation.id,
                "created_at": conversation.created_at,
                "metadata": conversation.metadata,
                "items": conversation.items,
            }
        ).encode()
        temp = self.folder / f".{conversation.id}.{uuid.uuid4().hex}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except OSError as exc:
            raise PowerError(f"cannot save conversation {conversation.id}: {exc}") from exc
        finally:
            with suppress(FileNotFoundError):
                temp.unlink()


def with_unique_ids(items: list[dict[str, Any]], taken: set[Any]) -> list[dict[str, Any]]:
    """``items`` with a fresh id for any whose id is in ``taken`` or repeated among them."""
    unique = []
    for item in items:
        own = item.get("id")
        if own in taken:
            prefix = own.split("_", 1)[0] if isinstance(own, str) and "_" in own else "item"
            item = {**item, "id": item_id(prefix)}
        taken.add(item["id"])
        unique.append(item)
    return unique

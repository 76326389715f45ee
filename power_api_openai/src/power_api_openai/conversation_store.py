"""Conversations kept on disk (OpenAI's Conversations API), so that they outlive a restart as
OpenAI's do: one append-only log each, ``<home>/conversations/<id>.jsonl``.

Its first line is the conversation (``id``, ``created_at``, ``metadata``); each later line
is one change: ``{"add": [items]}``, ``{"metadata": {...}}`` or ``{"delete": item_id}``. A
change appends one line and syncs it, so it costs what it adds, not what the conversation
holds. A reader keeps each conversation's state with the offset it has read to and reads
only what was appended since, by this process or by another server on the same home
(writers take an ``flock`` on the file). A line a crash cut short is never read, and the
next writer cuts it off. When deleted items make up most of a log it is written anew
(aside, then renamed over it). Deleting a conversation removes its file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Container, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from power_api_openai.response_ids import item_id
from power_core.errors import InvalidRequest, NotFound, PowerError
from power_core.server.views import compact_json
from power_core.store.local import sync_folder

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock: one server per home there
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("power_api_openai")

#: the ids this store makes (``conv_`` and 48 hex digits); anything else is not found
_CONVERSATION_ID = re.compile(r"conv_[0-9a-f]{48}")
#: the parsed conversations kept in memory, in bytes of their logs
CACHE_BYTES = 64 << 20
_LOCK_POLL_SECONDS = 0.02


class ConversationNotFound(NotFound):
    """No conversation of that id is kept (never made, deleted, or not an id at all)."""

    def __init__(self, conversation_id: str, param: str = "conversation_id") -> None:
        shown = conversation_id if len(conversation_id) <= 80 else conversation_id[:80] + "..."
        super().__init__(f"Conversation with id '{shown}' not found.", param=param)


class ItemNotFound(NotFound):
    """No item of that id is in the conversation."""


class ConversationFull(InvalidRequest):
    """A conversation whose log would pass the server's ``max_body_bytes``."""

    code = "conversation_too_large"


@dataclass
class Conversation:
    """A conversation as its log says it is now."""

    id: str
    created_at: int
    metadata: dict[str, str] = field(default_factory=dict)
    #: its items by id, in order
    held: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the place of every item ever added, deleted ones included (pages resume after one)
    positions: dict[str, int] = field(default_factory=dict)
    #: the bytes of the log read so far (whole lines), and of the items still held
    size: int = 0
    held_bytes: int = 0
    _item_bytes: dict[str, int] = field(default_factory=dict)

    @property
    def items(self) -> list[dict[str, Any]]:
        return list(self.held.values())

    def item(self, item: str) -> dict[str, Any]:
        """The item of that id, or :class:`ItemNotFound`."""
        found = self.held.get(item)
        if found is None:
            raise ItemNotFound(
                f"Item with id '{item[:80]}' not found in conversation {self.id}.",
                param="item_id",
            )
        return found

    def public(self) -> dict[str, Any]:
        """The ``conversation`` object of the API (its items are listed apart)."""
        return {
            "id": self.id,
            "object": "conversation",
            "created_at": self.created_at,
            "metadata": self.metadata,
        }

    def apply(self, change: Any, line_bytes: int) -> None:
        """One line of the log after the first; ValueError when it is not one."""
        if not isinstance(change, dict) or len(change) != 1:
            raise ValueError("a change is an object of one key")
        [(kind, value)] = change.items()
        if kind == "add" and isinstance(value, list):
            for item in value:
                if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                    raise ValueError("an added item without an id")
                self._drop(item["id"])
                self.held[item["id"]] = item
                self.positions[item["id"]] = len(self.positions)
                self._item_bytes[item["id"]] = line_bytes // max(len(value), 1)
                self.held_bytes += self._item_bytes[item["id"]]
        elif kind == "metadata" and isinstance(value, dict):
            self.metadata = value
        elif kind == "delete" and isinstance(value, str):
            self._drop(value)
        else:
            raise ValueError(f"an unknown change {kind!r}")

    def _drop(self, item: str) -> None:
        if self.held.pop(item, None) is not None:
            self.held_bytes -= self._item_bytes.pop(item, 0)


@dataclass
class _Cached:
    conversation: Conversation
    inode: tuple[int, int]


class ConversationStore:
    """Conversations in ``folder``, none of whose logs may pass ``max_bytes``."""

    def __init__(self, folder: Path, max_bytes: int, cache_bytes: int = CACHE_BYTES) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._cache_bytes = cache_bytes
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._cached_bytes = 0
        self._locks: dict[str, threading.Lock] = {}
        self._remove_leftovers()

    # ------------------------------------------------------------------------- reading
    def get(self, conversation_id: str, param: str = "conversation_id") -> Conversation:
        """The conversation as it is now, or :class:`ConversationNotFound` naming ``param``."""
        path = self._path(conversation_id, param)
        try:
            with open(path, "rb") as handle:
                return self._read(conversation_id, handle, path)
        except FileNotFoundError:
            self._forget(conversation_id)
            raise ConversationNotFound(conversation_id, param) from None

    def _read(self, conversation_id: str, handle: Any, path: Path) -> Conversation:
        """The conversation in the open log ``handle``: the cached state and what was
        appended since it was read, or the whole log."""
        status = os.fstat(handle.fileno())
        inode = (status.st_dev, status.st_ino)
        cached = self._cache.get(conversation_id)
        if cached is None or cached.inode != inode or cached.conversation.size > status.st_size:
            self._forget(conversation_id)
            cached = _Cached(self._parse_header(conversation_id, handle, path), inode)
            self._cache[conversation_id] = cached
            self._cached_bytes += cached.conversation.size
        conversation = cached.conversation
        if status.st_size > conversation.size:
            handle.seek(conversation.size)
            tail = handle.read(status.st_size - conversation.size)
            whole = tail[: tail.rfind(b"\n") + 1]  # a line without its end is not written yet
            try:
                for line in whole.splitlines():
                    conversation.apply(json.loads(line), len(line) + 1)
            except (ValueError, RecursionError) as exc:
                self._forget(conversation_id)
                raise _damaged(conversation_id, path, exc) from None
            self._grew(conversation_id, conversation, len(whole))
        self._cache.move_to_end(conversation_id)
        while self._cached_bytes > self._cache_bytes and len(self._cache) > 1:
            self._forget(next(iter(self._cache)))
        return conversation

    def _parse_header(self, conversation_id: str, handle: Any, path: Path) -> Conversation:
        handle.seek(0)
        line = handle.readline()
        try:
            if not line.endswith(b"\n"):
                raise ValueError("its first line is cut short")
            header = json.loads(line)
            if header.get("id") != conversation_id:
                raise ValueError("it names another conversation")
            conversation = Conversation(
                conversation_id, int(header["created_at"]), dict(header["metadata"])
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise _damaged(conversation_id, path, exc) from None
        conversation.size = len(line)
        return conversation

    def _forget(self, conversation_id: str) -> None:
        cached = self._cache.pop(conversation_id, None)
        if cached is not None:
            self._cached_bytes -= cached.conversation.size

    def _grew(self, conversation_id: str, conversation: Conversation, added: int) -> None:
        conversation.size += added
        cached = self._cache.get(conversation_id)
        if cached is not None and cached.conversation is conversation:
            self._cached_bytes += added

    # ------------------------------------------------------------------------- writing
    def create(self, items: list[dict[str, Any]], metadata: dict[str, str]) -> Conversation:
        conversation_id = item_id("conv")
        header = {"id": conversation_id, "created_at": int(time.time()), "metadata": metadata}
        lines = [header] + ([{"add": with_unique_ids(items, set())}] if items else [])
        data = b"".join(compact_json(line).encode() + b"\n" for line in lines)
        self._check_room(0, len(data), "items")
        path = self._path(conversation_id, "conversation_id")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(path, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            sync_folder(self.folder)
        except OSError as exc:
            with suppress(OSError):
                path.unlink()
            raise PowerError(f"cannot save the conversation: {exc.strerror or exc}") from exc
        return self.get(conversation_id)

    def set_metadata(self, conversation_id: str, metadata: dict[str, str]) -> Conversation:
        with self._changing(conversation_id, "conversation_id") as (conversation, write):
            write({"metadata": metadata})
        return conversation

    def append(
        self,
        conversation_id: str,
        items: list[dict[str, Any]],
        param: str = "conversation_id",
        *,
        limit_param: str | None = "conversation_id",
    ) -> list[dict[str, Any]]:
        """Add ``items`` at the end; one whose id the conversation already holds gets a new
        one. Returns the items as added. :class:`ConversationFull` naming ``limit_param``
        when they would pass the limit; ``None`` adds them all the same (a response's, whose
        conversation had room when it began)."""
        with self._changing(conversation_id, param) as (conversation, write):
            added = with_unique_ids(items, conversation.held)
            write({"add": added}, limit_param)
        return added

    def delete_item(self, conversation_id: str, item: str) -> Conversation:
        with self._changing(conversation_id, "conversation_id") as (conversation, write):
            conversation.item(item)
            write({"delete": item})
            wasted = conversation.size > 4 * conversation.held_bytes + 65536
        if wasted:
            self._rewrite(conversation_id)
        return self.get(conversation_id)

    def delete(self, conversation_id: str) -> None:
        path = self._path(conversation_id, "conversation_id")
        with self._local_lock(conversation_id):
            try:
                path.unlink()
            except FileNotFoundError:
                raise ConversationNotFound(conversation_id) from None
            self._forget(conversation_id)
            self._locks.pop(conversation_id, None)
        with suppress(OSError):
            sync_folder(self.folder)

    def check_room(self, conversation: Conversation, param: str) -> None:
        """:class:`ConversationFull` when ``conversation`` has no room left at all."""
        self._check_room(conversation.size, 0, param)

    def _check_room(self, size: int, adding: int, param: str) -> None:
        if size + adding > self.max_bytes:
            raise ConversationFull(
                f"The conversation would take {size + adding} bytes, over this server's "
                f"limit of {self.max_bytes} (max_body_bytes); start a new conversation.",
                param=param,
            )

    @contextmanager
    def _changing(self, conversation_id: str, param: str) -> Iterator[tuple[Conversation, Any]]:
        """The conversation, read afresh under its locks, and a function that appends one
        change to its log (synced) and applies it."""
        path = self._path(conversation_id, param)
        with self._local_lock(conversation_id):
            handle = _locked_log(path)
            if handle is None:
                self._forget(conversation_id)
                raise ConversationNotFound(conversation_id, param)
            with handle:
                descriptor = handle.fileno()
                conversation = self._read(conversation_id, handle, path)
                if os.fstat(descriptor).st_size > conversation.size:
                    os.truncate(descriptor, conversation.size)  # a line a crash cut short

                def write(change: dict[str, Any], limit_param: str | None = None) -> None:
                    line = compact_json(change).encode() + b"\n"
                    if limit_param is not None:
                        self._check_room(conversation.size, len(line), limit_param)
                    try:
                        handle.write(line)
                        handle.flush()
                        os.fsync(descriptor)
                    except OSError as exc:
                        self._forget(conversation_id)
                        with suppress(OSError):
                            os.truncate(descriptor, conversation.size)
                        raise PowerError(
                            f"cannot save the conversation: {exc.strerror or exc}"
                        ) from exc
                    conversation.apply(change, len(line))
                    self._grew(conversation_id, conversation, len(line))

                yield conversation, write

    def _rewrite(self, conversation_id: str) -> None:
        """Write the log anew with only what is left, aside then renamed over it."""
        with self._changing(conversation_id, "conversation_id") as (conversation, _):
            header = {
                "id": conversation.id,
                "created_at": conversation.created_at,
                "metadata": conversation.metadata,
            }
            lines = [header] + ([{"add": conversation.items}] if conversation.items else [])
            aside = self.folder / f".{conversation_id}.{uuid.uuid4().hex}"
            try:
                with open(aside, "wb") as handle:
                    for line in lines:
                        handle.write(compact_json(line).encode() + b"\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(aside, self._path(conversation_id, "conversation_id"))
            except OSError as exc:  # the log as it was still holds everything
                log.warning("conversation %s was not compacted: %s", conversation_id, exc)
            finally:
                with suppress(OSError):
                    aside.unlink()
            self._forget(conversation_id)

    def _local_lock(self, conversation_id: str) -> threading.Lock:
        # one per conversation: a gevent lock in the server, so a greenlet waits its turn
        return self._locks.setdefault(conversation_id, threading.Lock())

    def _path(self, conversation_id: str, param: str) -> Path:
        # only ids this store makes name a file: nothing else can reach outside the folder
        if not _CONVERSATION_ID.fullmatch(conversation_id):
            raise ConversationNotFound(conversation_id, param)
        return self.folder / f"{conversation_id}.jsonl"

    def _remove_leftovers(self) -> None:
        """Remove what compactions a crash cut short left aside."""
        with suppress(OSError):
            for path in self.folder.iterdir():
                if path.name.startswith(".conv_"):
                    with suppress(OSError):
                        path.unlink()


def with_unique_ids(items: list[dict[str, Any]], held: Container[Any]) -> list[dict[str, Any]]:
    """``items`` with a fresh id for any whose id is ``held`` or repeated among them."""
    unique = []
    seen: set[Any] = set()
    for item in items:
        own = item.get("id")
        if own in held or own in seen:
            prefix = own.split("_", 1)[0] if isinstance(own, str) and "_" in own else "item"
            item = {**item, "id": item_id(prefix)}
        seen.add(item["id"])
        unique.append(item)
    return unique


def _locked_log(path: Path) -> Any:
    """The log at ``path`` open for appending, under an exclusive ``flock`` (waited for
    with ``time.sleep``, which yields under gevent); ``None`` when there is none. A log
    written anew (renamed over) while we waited is opened again."""
    while True:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:
            return None
        handle = open(descriptor, "a+b")  # noqa: SIM115 - the caller closes it
        try:
            while fcntl is not None:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    time.sleep(_LOCK_POLL_SECONDS)
            held = os.fstat(descriptor)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                handle.close()
                return None
        except BaseException:
            handle.close()
            raise
        if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
            return handle
        handle.close()


def _damaged(conversation_id: str, path: Path, exc: BaseException) -> PowerError:
    log.error("conversation log %s is damaged: %s", path, exc)
    return PowerError(f"conversation {conversation_id} is damaged on the server's disk")

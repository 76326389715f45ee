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
from power_core.store.local import replace_durably, sync_folder
from power_core.store.locks import locked_descriptor

log = logging.getLogger("power_api_openai")

#: the ids this store makes (``conv_`` and 48 hex digits); anything else is not found
_CONVERSATION_ID = re.compile(r"conv_[0-9a-f]{48}")
#: the parsed conversations kept in memory, in bytes of their logs (parsed, they take
#: several times that)
CACHE_BYTES = 16 << 20
#: the places of deleted items a log written anew keeps
GONE_KEPT = 1000
#: what a crash left aside is removed at a start once it is this old (seconds): younger,
#: it may be another server's write under way
LEFTOVER_AGE = 3600


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
    #: which writing of the log this is (a new one each time it is written anew)
    generation: str = ""
    #: the place the next item added takes
    next_position: int = 0
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
        """One line of the log after the first; ValueError when it is not one. An ``add``
        written anew (:meth:`ConversationStore._rewrite`) says where its items were
        (``at``)."""
        if not isinstance(change, dict) or not 1 <= len(change) <= 2:
            raise ValueError("a change is an object of one key")
        places = change.pop("at", None)
        [(kind, value)] = change.items()
        if kind == "add" and isinstance(value, list):
            if places is not None and not (
                isinstance(places, list)
                and len(places) == len(value)
                and all(isinstance(place, int) for place in places)
            ):
                raise ValueError("an add's places are not one integer per item")
            for index, item in enumerate(value):
                if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                    raise ValueError("an added item without an id")
                place = places[index] if places is not None else self.next_position
                self._drop(item["id"])
                self.held[item["id"]] = item
                self.positions[item["id"]] = place
                self.next_position = max(self.next_position, place + 1)
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

    def header(self) -> dict[str, Any]:
        """The first line of its log written anew: the places of the items deleted most
        recently (so that a page resumes after one), and where the next item goes."""
        gone = sorted(
            ((place, item) for item, place in self.positions.items() if item not in self.held),
            reverse=True,
        )[:GONE_KEPT]
        return {
            "id": self.id,
            "created_at": self.created_at,
            "metadata": self.metadata,
            "generation": uuid.uuid4().hex,
            "next_position": self.next_position,
            "gone": {item: place for place, item in gone},
        }


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
        except OSError as exc:  # a permission, a disk error: the log stays as it is
            log.error("conversation log %s cannot be read: %s", path, exc)
            raise PowerError(f"conversation {conversation_id} cannot be read now") from exc

    def _read(self, conversation_id: str, handle: Any, path: Path) -> Conversation:
        """The conversation in the open log ``handle``: the cached state and what was
        appended since it was read, or the whole log when the log was written anew since
        (its first line names another generation) or is not cached."""
        status = os.fstat(handle.fileno())
        line, header = self._header(conversation_id, handle, path)
        cached = self._cache.get(conversation_id)
        if (
            cached is None
            or cached.conversation.generation != header.get("generation", "")
            or cached.inode != (status.st_dev, status.st_ino)
            or cached.conversation.size > status.st_size
        ):
            self._forget(conversation_id)
            conversation = _from_header(conversation_id, header, path)
            conversation.size = len(line)
            cached = _Cached(conversation, (status.st_dev, status.st_ino))
            self._cache[conversation_id] = cached
            self._cached_bytes += conversation.size
        conversation = cached.conversation
        if status.st_size > conversation.size:
            handle.seek(conversation.size)
            tail = handle.read(status.st_size - conversation.size)
            whole = tail[: tail.rfind(b"\n") + 1]  # a line without its end is not written yet
            try:
                for change in whole.splitlines():
                    conversation.apply(json.loads(change), len(change) + 1)
            except (ValueError, RecursionError) as exc:
                self._forget(conversation_id)
                raise _damaged(conversation_id, path, exc) from None
            self._grew(conversation_id, conversation, len(whole))
        self._cache.move_to_end(conversation_id)
        while self._cached_bytes > self._cache_bytes and len(self._cache) > 1:
            self._forget(next(iter(self._cache)))
        return conversation

    def _header(self, conversation_id: str, handle: Any, path: Path) -> tuple[bytes, Any]:
        handle.seek(0)
        line = handle.readline()
        try:
            if not line.endswith(b"\n"):
                raise ValueError("its first line is cut short")
            return line, json.loads(line)
        except (ValueError, RecursionError) as exc:
            self._forget(conversation_id)
            raise _damaged(conversation_id, path, exc) from None

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
        header = Conversation(conversation_id, int(time.time()), metadata).header()
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
            wasted = _mostly_gone(conversation)
        if wasted:
            self._rewrite(conversation_id)
        return self.get(conversation_id)

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
            wasted = _mostly_gone(conversation)
        if wasted:
            self._rewrite(conversation_id)
        return self.get(conversation_id)

    def delete(self, conversation_id: str) -> None:
        """Remove the log, under its locks (so a log being written anew elsewhere is not
        renamed back into place after)."""
        path = self._path(conversation_id, "conversation_id")
        with self._local_lock(conversation_id, path):
            handle = _locked_log(path)
            if handle is None:
                self._forget(conversation_id)
                raise ConversationNotFound(conversation_id)
            with handle:
                try:
                    path.unlink()
                except FileNotFoundError:
                    raise ConversationNotFound(conversation_id) from None
                except OSError as exc:
                    raise _unwritable(exc) from exc
            self._forget(conversation_id)
            self._locks.pop(conversation_id, None)
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
        with self._local_lock(conversation_id, path, param):
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
                        raise _unwritable(exc) from exc
                    conversation.apply(change, len(line))
                    self._grew(conversation_id, conversation, len(line))

                yield conversation, write

    def _rewrite(self, conversation_id: str) -> None:
        """Write the log anew with only what is left, aside then renamed over it."""
        with self._changing(conversation_id, "conversation_id") as (conversation, _):
            held = conversation.items
            lines: list[dict[str, Any]] = [conversation.header()]
            if held:
                places = [conversation.positions[item["id"]] for item in held]
                lines.append({"add": held, "at": places})
            data = b"".join(compact_json(line).encode() + b"\n" for line in lines)
            aside = self.folder / f".{conversation_id}.{uuid.uuid4().hex}"
            try:
                replace_durably(self._path(conversation_id, "conversation_id"), data, aside)
            except OSError as exc:  # the log as it was still holds everything
                log.warning("conversation %s was not compacted: %s", conversation_id, exc)
            self._forget(conversation_id)

    def _local_lock(
        self, conversation_id: str, path: Path, param: str = "conversation_id"
    ) -> threading.Lock:
        """The conversation's lock in this process (a gevent lock in the server, so a
        greenlet waits its turn); made only for a conversation that exists."""
        lock = self._locks.get(conversation_id)
        if lock is None:
            if not path.exists():
                raise ConversationNotFound(conversation_id, param)
            lock = self._locks.setdefault(conversation_id, threading.Lock())
        return lock

    def _path(self, conversation_id: str, param: str) -> Path:
        # only ids this store makes name a file: nothing else can reach outside the folder
        if not _CONVERSATION_ID.fullmatch(conversation_id):
            raise ConversationNotFound(conversation_id, param)
        return self.folder / f"{conversation_id}.jsonl"

    def _remove_leftovers(self) -> None:
        """Remove what compactions a crash cut short left aside (once it is old enough
        not to be another server's under way)."""
        with suppress(OSError):
            for path in self.folder.iterdir():
                if path.name.startswith(".conv_"):
                    with suppress(OSError):
                        if time.time() - path.stat().st_mtime > LEFTOVER_AGE:
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


def _mostly_gone(conversation: Conversation) -> bool:
    """Whether the log is mostly what was deleted or replaced (worth writing anew)."""
    return conversation.size > 4 * conversation.held_bytes + 65536


def _unwritable(exc: OSError) -> PowerError:
    return PowerError(f"cannot save the conversation: {exc.strerror or exc}")


def _locked_log(path: Path) -> Any:
    """The log at ``path`` open for appending, under an exclusive ``flock`` (waited for
    with ``time.sleep``, which yields under gevent; a log written anew while we waited is
    opened again); ``None`` when there is none."""
    try:
        descriptor = locked_descriptor(path, exclusive=True, flags=os.O_RDWR | os.O_APPEND)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unwritable(exc) from exc
    return open(descriptor, "a+b")


def _from_header(conversation_id: str, header: Any, path: Path) -> Conversation:
    """A conversation as its log's first line begins it."""
    try:
        if header.get("id") != conversation_id:
            raise ValueError("it names another conversation")
        conversation = Conversation(
            conversation_id,
            int(header["created_at"]),
            dict(header["metadata"]),
            str(header.get("generation", "")),
            int(header.get("next_position", 0)),
        )
        for item, place in dict(header.get("gone", {})).items():
            conversation.positions[str(item)] = int(place)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _damaged(conversation_id, path, exc) from None
    return conversation


def _damaged(conversation_id: str, path: Path, exc: BaseException) -> PowerError:
    log.error("conversation log %s is damaged: %s", path, exc)
    return PowerError(f"conversation {conversation_id} is damaged on the server's disk")

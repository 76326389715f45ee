"""Resumable downloads kept beside the store, outside ``blobs/``.

Each download is a pair of files in ``partial/``: ``<key>.part`` (the bytes so far) and
``<key>.json`` (what the downloader needs to resume safely: the URL and the server's
validators). Neither is ever visible as a blob; a download becomes a blob only through
:meth:`power_core.store.local.LocalStore.commit_partial`. ``<key>.lock`` makes one
downloader wait for another, and goes with the other two.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from power_core.errors import InvalidRequest
from power_core.store.locks import file_lock

_KEY = re.compile(r"[0-9a-f]{8,64}")
_MAX_STATE_BYTES = 64 << 10


class LocalPartialDownload:
    """One resumable download (see :class:`power_core.store.base.PartialDownload`)."""

    def __init__(self, folder: Path, key: str) -> None:
        self.path = folder / f"{key}.part"
        self._state_path = folder / f"{key}.json"
        self._folder = folder

    def size(self) -> int:
        """Bytes downloaded so far (0 when nothing is kept)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def read_state(self) -> dict[str, Any]:
        """The saved state, or ``{}`` when there is none or it cannot be read."""
        try:
            with open(self._state_path, "rb") as handle:
                raw = handle.read(_MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return {}
        if len(raw) > _MAX_STATE_BYTES:
            return {}
        try:
            state = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return {}  # a torn or foreign file: the downloader restarts from zero
        return state if isinstance(state, dict) else {}

    def write_state(self, state: dict[str, Any]) -> None:
        """Replace the saved state atomically (write aside, then rename)."""
        self._folder.mkdir(parents=True, exist_ok=True)
        temp = self._folder / f".{self._state_path.name}.{uuid.uuid4().hex}"
        try:
            with open(temp, "w", encoding="utf-8") as handle:
                json.dump(state, handle)
            os.replace(temp, self._state_path)
        finally:
            with suppress(FileNotFoundError):
                temp.unlink()

    def discard(self) -> None:
        """Forget the bytes and the state."""
        for path in (self.path, self._state_path):
            with suppress(FileNotFoundError):
                path.unlink()

    def is_gone(self) -> bool:
        """Whether neither the bytes nor the state are kept (finished or discarded)."""
        return not self.path.exists() and not self._state_path.exists()

    def forget_state(self) -> None:
        """Drop the state only (after the bytes became a blob)."""
        with suppress(FileNotFoundError):
            self._state_path.unlink()


@contextmanager
def open_partial(folder: Path, key: str) -> Iterator[LocalPartialDownload]:
    """Exclusive access to the download ``key``; another process or thread waits."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidRequest(f"invalid partial download key {key!r}")
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / f"{key}.lock"
    with file_lock(lock, exclusive=True):
        download = LocalPartialDownload(folder, key)
        try:
            yield download
        finally:
            if download.is_gone():
                # Removed while still held: a waiter then finds its lock stale and retries.
                with suppress(OSError):
                    lock.unlink()

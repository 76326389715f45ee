"""The server's kept responses on disk, under ``<home>/responses/``, so that they outlive a
restart as OpenAI's do: one file each, ``<id>.jsonl``, of three lines (what the index needs,
the response, its conversation), so that a start reads only the first line of each.

A file is written aside, flushed to disk and renamed into place (the folder synced after),
so a crash leaves it whole or absent; what a crash leaves aside is removed at a later
start, once it is an hour old (younger, it may be another server's write under way). A
file's modification time is when it was last used, which orders evictions across
restarts. Sizes are counted as the disk counts them, in 4 KiB blocks. A file that does not
parse, or names another response than its name says, is damaged and removed; one that
cannot be read now (a permission, a disk error) is a 500 and stays.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

from power_api_openai.response_store import ShelvedEntry, StoredResponse
from power_core.errors import PowerError
from power_core.server.views import compact_json
from power_core.store.local import replace_durably, sync_folder

log = logging.getLogger("power_api_openai")

_RESPONSE_ID = re.compile(r"resp_[0-9a-f]{1,64}")
_ASIDE_PREFIX = ".resp-"
#: what a write left aside is removed at a start once it is this old (seconds)
LEFTOVER_AGE = 3600
BLOCK = 4096


class DamagedResponse(ValueError):
    """A kept response's file that does not hold what it should."""


def disk_bytes(size: int) -> int:
    """``size`` bytes as the disk counts them: whole blocks."""
    return -(-size // BLOCK) * BLOCK


class DiskShelf:
    """Kept responses as files in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, response_id: str, stored: StoredResponse) -> int | None:
        header = {
            "id": response_id,
            "inputs": [stored.inputs.start, stored.inputs.stop],
            "own_item_ids": list(stored.own_item_ids),
        }
        lines = [compact_json(header).encode(), stored.response, stored.conversation, b""]
        data = b"\n".join(lines)
        aside = self.folder / f"{_ASIDE_PREFIX}{uuid.uuid4().hex}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            replace_durably(self.folder / f"{response_id}.jsonl", data, aside)
        except OSError as exc:
            log.warning("response %s was not kept: %s", response_id, exc)
            return None
        return disk_bytes(len(data))

    def load(self, response_id: str) -> StoredResponse | None:
        path = self._path(response_id)
        if path is None:
            return None
        try:
            raw = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None  # none there (a folder where the file would be is none either)
        except OSError as exc:
            log.error("kept response file %s cannot be read: %s", path, exc)
            raise PowerError(f"kept response {response_id} cannot be read now") from exc
        try:
            stored = _parsed(raw, response_id)
        except DamagedResponse as exc:
            log.warning("kept response file %s is damaged (%s); it is removed", path, exc)
            with suppress(OSError):
                path.unlink()
            return None
        with suppress(OSError):
            os.utime(path)  # used now: evicted last
        return stored

    def size_of(self, response_id: str, stored: StoredResponse) -> int:
        path = self._path(response_id)
        try:
            return disk_bytes(path.stat().st_size) if path is not None else 0
        except OSError:
            return disk_bytes(stored.size)

    def remove(self, response_id: str) -> None:
        path = self._path(response_id)
        if path is None:
            return
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("kept response file %s cannot be removed: %s", path, exc)
            raise PowerError(f"kept response {response_id} cannot be removed now") from exc
        sync_folder(self.folder)

    def entries(self) -> Iterable[ShelvedEntry]:
        """The responses on disk, the least recently used first; old leftovers of writes a
        crash cut short are removed, and so are files whose first line is damaged."""
        try:
            paths = list(self.folder.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:  # the server starts all the same; saving will say more
            log.warning("cannot read kept responses in %s: %s", self.folder, exc)
            return []
        found: list[tuple[int, ShelvedEntry]] = []
        for path in paths:
            if path.name.startswith(_ASIDE_PREFIX):
                _remove_if_old(path)
                continue
            if not path.name.endswith(".jsonl"):
                continue
            response_id = path.name.removesuffix(".jsonl")
            if _RESPONSE_ID.fullmatch(response_id):
                entry = self._entry(path, response_id)
                if entry is not None:
                    found.append(entry)
        found.sort(key=lambda pair: pair[0])
        return [entry for _, entry in found]

    def _entry(self, path: Path, response_id: str) -> tuple[int, ShelvedEntry] | None:
        try:
            status = path.stat()
            if not path.is_file():
                return None
            with open(path, "rb") as handle:
                header = _header(handle.readline(), response_id)
        except OSError as exc:
            log.warning("kept response file %s cannot be read (%s); left out", path, exc)
            return None
        except DamagedResponse as exc:
            log.warning("kept response file %s is damaged (%s); it is removed", path, exc)
            with suppress(OSError):
                path.unlink()
            return None
        entry = ShelvedEntry(response_id, disk_bytes(status.st_size), header[1])
        return status.st_mtime_ns, entry

    def _path(self, response_id: str) -> Path | None:
        # only response ids name a file: nothing else can reach outside the folder
        if not _RESPONSE_ID.fullmatch(response_id):
            return None
        return self.folder / f"{response_id}.jsonl"


def _header(line: bytes, response_id: str) -> tuple[slice, tuple[str, ...]]:
    """Where the response's own inputs are, and its own items' ids, from a first line."""
    try:
        header = json.loads(line)
        start, stop = header["inputs"]
        owned = header["own_item_ids"]
        if header["id"] != response_id:
            raise DamagedResponse(f"it names {str(header['id'])[:80]!r}")
        if not (isinstance(start, int) and isinstance(stop, int)):
            raise DamagedResponse("its inputs are not a range")
        if not (isinstance(owned, list) and all(isinstance(i, str) for i in owned)):
            raise DamagedResponse("its item ids are not strings")
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        if isinstance(exc, DamagedResponse):
            raise
        raise DamagedResponse(f"its first line does not parse: {exc}") from None
    return slice(start, stop), tuple(owned)


def _parsed(raw: bytes, response_id: str) -> StoredResponse:
    lines = raw.split(b"\n")
    if len(lines) != 4 or lines[3]:
        raise DamagedResponse("it is not three whole lines")
    inputs, owned = _header(lines[0], response_id)
    try:
        response = json.loads(lines[1])
    except (ValueError, RecursionError) as exc:
        raise DamagedResponse(f"its response does not parse: {exc}") from None
    if not (isinstance(response, dict) and response.get("id") == response_id):
        raise DamagedResponse("its response is another one's")
    # the conversation is parsed where it is used; a list it must be
    if not (lines[2].startswith(b"[") and lines[2].endswith(b"]")):
        raise DamagedResponse("its conversation is not a list")
    return StoredResponse(lines[1], lines[2], inputs, owned)


def _remove_if_old(path: Path) -> None:
    with suppress(OSError):
        if time.time() - path.stat().st_mtime > LEFTOVER_AGE:
            path.unlink()

"""The server's kept responses on disk, under ``<home>/responses/``, so that they outlive a
restart as OpenAI's do: one file each, ``<id>.jsonl``, of three lines (what the index needs,
the response, its conversation), so that a start reads only the first line of each.

A file is written aside, flushed to disk and renamed into place, so a crash leaves it
whole or absent; what a crash leaves aside is removed at the next start. A file's
modification time is when it was last used, which orders evictions across restarts.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

from power_api_openai.response_store import ShelvedEntry, StoredResponse
from power_core.server.views import compact_json

log = logging.getLogger("power_api_openai")

_FILE_NAME = re.compile(r"(resp_[0-9a-f]{1,64})\.jsonl")
_ASIDE_PREFIX = ".resp-"


class DiskShelf:
    """Kept responses as files in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, response_id: str, stored: StoredResponse) -> bool:
        header = {
            "id": response_id,
            "inputs": [stored.inputs.start, stored.inputs.stop],
            "size": stored.size,
            "own_item_ids": list(stored.own_item_ids),
        }
        data = b"\n".join([compact_json(header).encode(), stored.response, stored.conversation])
        aside = self.folder / f"{_ASIDE_PREFIX}{uuid.uuid4().hex}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(aside, "wb") as handle:
                handle.write(data + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(aside, self._path(response_id))
        except OSError as exc:
            log.warning("response %s was not kept: %s", response_id, exc)
            return False
        finally:
            with suppress(OSError):  # renamed into place, or never made
                aside.unlink()
        return True

    def load(self, response_id: str) -> StoredResponse | None:
        path = self._path(response_id)
        try:
            lines = path.read_bytes().split(b"\n")
            header = json.loads(lines[0])
            start, stop = header["inputs"]
            stored = StoredResponse(
                lines[1], lines[2], slice(start, stop), tuple(header["own_item_ids"])
            )
            json.loads(stored.conversation)  # whole, or damaged
            os.utime(path)  # used now: evicted last
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            log.warning("kept response file %s is damaged (%s); it is removed", path, exc)
            self.remove(response_id)
            return None
        return stored

    def remove(self, response_id: str) -> None:
        try:
            self._path(response_id).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not remove kept response %s: %s", response_id, exc)

    def entries(self) -> Iterable[ShelvedEntry]:
        """The responses on disk, the least recently used first; leftovers of writes a
        crash cut short are removed, and so are damaged files."""
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
                with suppress(OSError):
                    path.unlink()
                continue
            named = _FILE_NAME.fullmatch(path.name)
            if named is None:
                continue
            entry = self._entry(path, named.group(1))
            if entry is not None:
                found.append(entry)
        found.sort(key=lambda pair: pair[0])
        return [entry for _, entry in found]

    def _entry(self, path: Path, response_id: str) -> tuple[int, ShelvedEntry] | None:
        try:
            with open(path, "rb") as handle:
                header = json.loads(handle.readline())
            used = path.stat().st_mtime_ns
            entry = ShelvedEntry(response_id, int(header["size"]), tuple(header["own_item_ids"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("kept response file %s is damaged (%s); it is removed", path, exc)
            self.remove(response_id)
            return None
        return used, entry

    def _path(self, response_id: str) -> Path:
        return self.folder / f"{response_id}.jsonl"

"""Files uploaded through OpenAI's Files API, kept under ``<home>/files/``.

Each file is two files: ``<id>`` holds its bytes and ``<id>.json`` what OpenAI's file
object says of it (name, purpose, size, times). The bytes are written aside, synced and
renamed into place first, the description last (the same way), so a file exists exactly
when its description does: a crash leaves at worst bytes without one, removed at a later
start once an hour old (younger, another server's upload may be under way). A delete
removes the description first. A file past its ``expires_at`` is gone: it is removed when
it is next asked for or listed, and at a start.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from power_core.errors import InvalidRequest, NotFound, PowerError
from power_core.server.views import compact_json
from power_core.store.local import disk_error, replace_durably, sync_folder

log = logging.getLogger("power_api_openai")

#: OpenAI's limit on one file
MAX_FILE_BYTES = 512 << 20
#: what OpenAI's ``purpose`` may be
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
_FILE_ID = re.compile(r"file-[0-9a-f]{24}")
_ASIDE_PREFIX = ".upload-"
#: what a write left aside (or bytes without a description) is removed at a start once
#: it is this old (seconds)
LEFTOVER_AGE = 3600
_COPY_BYTES = 1 << 20


@dataclass(frozen=True)
class StoredFile:
    """OpenAI's file object, less its constant fields."""

    id: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    expires_at: int | None = None
    #: when it was created, finer than ``created_at``: the order files are listed in
    created_ns: int = 0

    def as_json(self) -> dict[str, Any]:
        """The file object as OpenAI's API returns it."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class FileStore:
    """Uploaded files in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._remove_leftovers()

    def add(
        self, source: IO[bytes], filename: str, purpose: str, expires_at: int | None
    ) -> StoredFile:
        """Keep what ``source`` holds (read to its end) as a new file. Blocking: call it off
        the server's hub for a large file. Raises a PowerError when the disk refuses."""
        aside, handle = self.new_upload()
        try:
            with handle:
                shutil.copyfileobj(source, handle, _COPY_BYTES)
        except OSError as exc:
            with suppress(OSError):
                aside.unlink()
            raise disk_error(exc, self.folder) from exc
        return self.keep(aside, filename, purpose, expires_at)

    def new_upload(self) -> tuple[Path, IO[bytes]]:
        """A file aside in the store's folder to write an upload into, and its handle; then
        :meth:`keep` it (its bytes are not copied again)."""
        aside = self.folder / f"{_ASIDE_PREFIX}{secrets.token_hex(8)}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            return aside, open(aside, "wb+")
        except OSError as exc:
            raise disk_error(exc, self.folder) from exc

    def keep(self, aside: Path, filename: str, purpose: str, expires_at: int | None) -> StoredFile:
        """Make the upload written to ``aside`` (by :meth:`new_upload`) a file: synced and
        renamed into place, then described. Raises a PowerError when the disk refuses."""
        file_id = f"file-{secrets.token_hex(12)}"
        try:
            with open(aside, "rb+") as handle:
                os.fsync(handle.fileno())
                size = handle.seek(0, os.SEEK_END)
            os.replace(aside, self.folder / file_id)
            now_ns = time.time_ns()
            stored = StoredFile(
                id=file_id,
                bytes=size,
                created_at=int(now_ns // 1_000_000_000),
                created_ns=now_ns,
                filename=filename,
                purpose=purpose,
                expires_at=expires_at,
            )
            description = compact_json(asdict(stored)).encode()
            replace_durably(self._description(file_id), description, aside)
        except OSError as exc:
            with suppress(OSError):
                aside.unlink()
            with suppress(OSError):
                (self.folder / file_id).unlink()
            raise disk_error(exc, self.folder) from exc
        return stored

    def get(self, file_id: str) -> StoredFile:
        """The file ``file_id``; raises NotFound (404) for an unknown, deleted or expired one."""
        stored = self._read(file_id) if _FILE_ID.fullmatch(file_id) else None
        if stored is None:
            raise NotFound(f"No such File object: {file_id}", param="id")
        if stored.expired(time.time()):
            self._remove(file_id)
            raise NotFound(f"No such File object: {file_id}", param="id")
        return stored

    def content_path(self, file_id: str) -> Path:
        """Where the bytes of the file ``file_id`` are (NotFound as :meth:`get`)."""
        self.get(file_id)
        return self.folder / file_id

    def read(self, file_id: str) -> tuple[StoredFile, bytes]:
        """The file ``file_id`` and all its bytes (NotFound as :meth:`get`)."""
        stored = self.get(file_id)
        try:
            return stored, (self.folder / file_id).read_bytes()
        except FileNotFoundError:  # deleted meanwhile
            raise NotFound(f"No such File object: {file_id}", param="id") from None
        except OSError as exc:
            raise PowerError(f"cannot read the file {file_id}: {exc.strerror or exc}") from exc

    def delete(self, file_id: str) -> None:
        """Remove the file ``file_id`` (NotFound as :meth:`get`)."""
        self.get(file_id)
        self._remove(file_id)

    def all(self) -> list[StoredFile]:
        """Every file kept, oldest first (expired ones are removed on the way)."""
        now = time.time()
        found: list[StoredFile] = []
        for file_id in self._ids():
            stored = self._read(file_id)
            if stored is None:
                continue
            if stored.expired(now):
                self._remove(file_id)
                continue
            found.append(stored)
        found.sort(key=lambda stored: (stored.created_ns, stored.id))
        return found

    def _ids(self) -> Iterator[str]:
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return
        for name in names:
            if name.endswith(".json") and _FILE_ID.fullmatch(name[: -len(".json")]):
                yield name[: -len(".json")]

    def _read(self, file_id: str) -> StoredFile | None:
        try:
            raw = self._description(file_id).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise PowerError(f"cannot read the file {file_id}: {exc.strerror or exc}") from exc
        try:
            data = json.loads(raw)
            stored = StoredFile(**data)
        except (ValueError, TypeError, RecursionError):
            log.warning("removing the damaged description of file %s", file_id)
            self._remove(file_id)
            return None
        return stored if stored.id == file_id else None

    def _remove(self, file_id: str) -> None:
        for path in (self._description(file_id), self.folder / file_id):
            with suppress(FileNotFoundError):
                path.unlink()
        sync_folder(self.folder)

    def _description(self, file_id: str) -> Path:
        return self.folder / f"{file_id}.json"

    def _remove_leftovers(self) -> None:
        """Remove what crashed writes left (aside files, bytes without a description) once
        an hour old, and expired files."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return
        cutoff = time.time() - LEFTOVER_AGE
        described = set(self._ids())
        for name in names:
            leftover = name.startswith(_ASIDE_PREFIX) or (
                _FILE_ID.fullmatch(name) is not None and name not in described
            )
            if not leftover:
                continue
            path = self.folder / name
            with suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
        self.all()  # removes the expired


def check_purpose(purpose: str | None) -> str:
    """``purpose`` if OpenAI knows it; InvalidRequest (400) if not."""
    if purpose not in PURPOSES:
        raise InvalidRequest(
            f"'purpose' must be one of {', '.join(PURPOSES)}; got {purpose!r}.", param="purpose"
        )
    return purpose

"""Batches (OpenAI's Batch API) kept under ``<home>/batches/``, so that they outlive a
restart: ``<id>.json`` is the batch object as the API shows it (written aside, synced and
renamed at each change of state), and ``<id>.out.jsonl`` / ``<id>.err.jsonl`` collect the
results of its requests as they finish, one line each, until the batch's output and error
files are made from them. A line a crash cut short is not a result: its request runs again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from contextlib import suppress
from pathlib import Path
from typing import Any

from power_core.errors import NotFound, PowerError
from power_core.server.views import compact_json
from power_core.store.local import replace_durably

log = logging.getLogger("power_api_openai")

_BATCH_ID = re.compile(r"batch_[0-9a-f]{24}")
#: the two result logs: what succeeded (2xx) and what did not
RESULT_KINDS = ("out", "err")


def new_batch_id() -> str:
    return f"batch_{secrets.token_hex(12)}"


class BatchStore:
    """The batches in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, batch: dict[str, Any]) -> None:
        """Keep ``batch`` (the API's batch object) durably."""
        batch_id = batch["id"]
        aside = self.folder / f".{batch_id}.{secrets.token_hex(6)}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            replace_durably(self._path(batch_id), compact_json(batch).encode(), aside)
        except OSError as exc:
            raise PowerError(f"cannot keep the batch {batch_id}: {exc.strerror or exc}") from exc

    def get(self, batch_id: str) -> dict[str, Any]:
        """The batch ``batch_id``; NotFound (404) for one never made."""
        batch = self._read(batch_id) if _BATCH_ID.fullmatch(batch_id) else None
        if batch is None:
            raise NotFound(f"No batch found with id '{batch_id[:80]}'.", param="batch_id")
        return batch

    def all(self) -> list[dict[str, Any]]:
        """Every batch, newest first."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            if name.endswith(".json") and _BATCH_ID.fullmatch(name[: -len(".json")]):
                batch = self._read(name[: -len(".json")])
                if batch is not None:
                    found.append(batch)
        found.sort(key=lambda batch: (batch.get("created_at", 0), batch["id"]), reverse=True)
        return found

    def append_result(self, batch_id: str, kind: str, line: dict[str, Any]) -> None:
        """Add one request's result to the ``kind`` log (``out`` or ``err``)."""
        with open(self.results_path(batch_id, kind), "ab") as handle:
            handle.write(compact_json(line).encode() + b"\n")

    def finished(self, batch_id: str) -> set[str]:
        """The ``custom_id`` of every request whose result is logged whole."""
        done: set[str] = set()
        for kind in RESULT_KINDS:
            for line in self._result_lines(batch_id, kind):
                done.add(line["custom_id"])
        return done

    def results_path(self, batch_id: str, kind: str) -> Path:
        return self.folder / f"{batch_id}.{kind}.jsonl"

    def whole_results(self, batch_id: str, kind: str) -> bytes:
        """The ``kind`` log without a line a crash cut short, synced to the disk."""
        path = self.results_path(batch_id, kind)
        try:
            with open(path, "rb+") as handle:
                data = handle.read()
                whole = data[: data.rfind(b"\n") + 1]
                if len(whole) != len(data):
                    handle.truncate(len(whole))
                handle.flush()
                os.fsync(handle.fileno())
                return whole
        except FileNotFoundError:
            return b""

    def drop_results(self, batch_id: str) -> None:
        for kind in RESULT_KINDS:
            with suppress(FileNotFoundError):
                self.results_path(batch_id, kind).unlink()

    def _result_lines(self, batch_id: str, kind: str) -> list[dict[str, Any]]:
        try:
            data = self.results_path(batch_id, kind).read_bytes()
        except FileNotFoundError:
            return []
        lines = []
        for raw in data.split(b"\n")[:-1]:  # the last piece: empty, or cut short
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict) and isinstance(line.get("custom_id"), str):
                lines.append(line)
        return lines

    def _read(self, batch_id: str) -> dict[str, Any] | None:
        try:
            raw = self._path(batch_id).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise PowerError(f"cannot read the batch {batch_id}: {exc.strerror or exc}") from exc
        try:
            batch = json.loads(raw)
        except ValueError:
            log.warning("the batch %s is damaged; it is left out", batch_id)
            return None
        return batch if isinstance(batch, dict) and batch.get("id") == batch_id else None

    def _path(self, batch_id: str) -> Path:
        return self.folder / f"{batch_id}.json"

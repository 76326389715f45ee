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
from collections.abc import Iterator
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import Any

from power_core.errors import NotFound, PowerError
from power_core.server.views import compact_json
from power_core.store.local import replace_durably
from power_core.store.locks import lock_if_free

log = logging.getLogger("power_api_openai")

_BATCH_ID = re.compile(r"batch_[0-9a-f]{24}")
#: the two result logs: what succeeded (2xx) and what did not
RESULT_KINDS = ("out", "err")
#: how much of a log's end is read at a time to find its last whole line
_TAIL_BYTES = 64 << 10


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

    def finished(self, batch_id: str) -> dict[str, set[str]]:
        """The ``custom_id`` of every request whose result is logged whole, by log. A line
        a crash cut short is cut off first, so the next result starts a line of its own."""
        done: dict[str, set[str]] = {}
        for kind in RESULT_KINDS:
            self._cut_torn_line(batch_id, kind)
            done[kind] = {line["custom_id"] for line in self._result_lines(batch_id, kind)}
        return done

    def usage(self, batch_id: str) -> dict[str, Any]:
        """The tokens the batch's answered requests used, summed as OpenAI's batch
        ``usage`` sums them (a chat's prompt and completion tokens count as input and
        output, as a response's do)."""
        sums = {"input": 0, "cached": 0, "output": 0, "reasoning": 0}
        for line in self._result_lines(batch_id, "out"):
            body = (line.get("response") or {}).get("body")
            used = body.get("usage") if isinstance(body, dict) else None
            if isinstance(used, dict):
                _add_usage(sums, used)
        return {
            "input_tokens": sums["input"],
            "input_tokens_details": {"cached_tokens": sums["cached"]},
            "output_tokens": sums["output"],
            "output_tokens_details": {"reasoning_tokens": sums["reasoning"]},
            "total_tokens": sums["input"] + sums["output"],
        }

    def results_path(self, batch_id: str, kind: str) -> Path:
        return self.folder / f"{batch_id}.{kind}.jsonl"

    def synced_results(self, batch_id: str, kind: str) -> Path | None:
        """The ``kind`` log, whole lines only, on the disk; ``None`` when it is empty."""
        path = self.results_path(batch_id, kind)
        self._cut_torn_line(batch_id, kind)
        try:
            with open(path, "rb+") as handle:
                handle.flush()
                os.fsync(handle.fileno())
                return path if handle.seek(0, os.SEEK_END) else None
        except FileNotFoundError:
            return None

    def running(self, batch_id: str) -> AbstractContextManager[bool]:
        """Whether this process may run ``batch_id`` (no other server on this home runs
        it), held for the ``with`` body."""
        return lock_if_free(self.folder / f"{batch_id}.lock")

    def _cut_torn_line(self, batch_id: str, kind: str) -> None:
        """Cut off a last line a crash left without its end (read from the end back)."""
        try:
            with open(self.results_path(batch_id, kind), "rb+") as handle:
                end = handle.seek(0, os.SEEK_END)
                whole = end
                while whole > 0:
                    start = max(0, whole - _TAIL_BYTES)
                    handle.seek(start)
                    tail = handle.read(whole - start)
                    if whole == end and tail.endswith(b"\n"):
                        return
                    newline = tail.rfind(b"\n")
                    if newline >= 0:
                        whole = start + newline + 1
                        break
                    whole = start
                handle.truncate(whole)
        except FileNotFoundError:
            return

    def drop_results(self, batch_id: str) -> None:
        for path in [self.results_path(batch_id, kind) for kind in RESULT_KINDS] + [
            self.folder / f"{batch_id}.lock"
        ]:
            with suppress(FileNotFoundError):
                path.unlink()

    def _result_lines(self, batch_id: str, kind: str) -> Iterator[dict[str, Any]]:
        """The whole lines of the ``kind`` log, one at a time (an embeddings batch's log
        holds every vector: it is never read whole)."""
        try:
            handle = open(self.results_path(batch_id, kind), "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return
        with handle:
            for raw in handle:
                if not raw.endswith(b"\n"):
                    return  # cut short by a crash
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(line, dict) and isinstance(line.get("custom_id"), str):
                    yield line

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


def _add_usage(sums: dict[str, int], used: dict[str, Any]) -> None:
    """Add one answer's ``usage`` (a chat's, a completion's, an embedding's, a response's)."""
    inputs = used.get("prompt_tokens", used.get("input_tokens"))
    outputs = used.get("completion_tokens", used.get("output_tokens"))
    input_details = used.get("prompt_tokens_details") or used.get("input_tokens_details")
    output_details = used.get("completion_tokens_details") or used.get("output_tokens_details")
    sums["input"] += inputs if isinstance(inputs, int) else 0
    sums["output"] += outputs if isinstance(outputs, int) else 0
    if isinstance(input_details, dict) and isinstance(input_details.get("cached_tokens"), int):
        sums["cached"] += input_details["cached_tokens"]
    if isinstance(output_details, dict):
        reasoning = output_details.get("reasoning_tokens")
        sums["reasoning"] += reasoning if isinstance(reasoning, int) else 0

"""Running batches: OpenAI's Batch API over this server's own endpoints.

A batch goes ``validating`` (its input file is read and every line checked, off the
server's thread; one bad line fails it) → ``in_progress`` (its requests run through the
server's own routes, as a client's request would, so a batch's chat completion is the one
a client gets; :mod:`power_api_openai.batch_requests`) → ``finalizing`` (its results become
an output file of the successes and an error file of the rest, ``purpose: batch_output``)
→ ``completed``. A cancel stops it taking new requests (``cancelling``; those under way
finish) and it ends ``cancelled`` with the results it has; one past its 24-hour window ends
``expired`` the same way, its unrun requests in the error file as ``batch_expired``.

Every change of state is made on the batch as stored (read, changed, written), so a cancel
that lands while the runner reads the input is not undone. Results are logged as they come
(:mod:`power_api_openai.batch_store`); after a restart a batch goes on with the requests it
had not finished, its counts taken from the logs. One server runs a batch at a time (a lock
per batch), so two servers on one home do not both run it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask

from power_api_openai.batch_input import BatchRequest, read_requests
from power_api_openai.batch_requests import RequestRunner
from power_api_openai.batch_store import BatchStore
from power_api_openai.file_store import FileStore
from power_core.concurrency import run_on_native_thread
from power_core.errors import PowerError

log = logging.getLogger("power_api_openai")

#: OpenAI's only completion window, in seconds
WINDOW_SECONDS = 24 * 3600
_RUNNING = ("validating", "in_progress", "finalizing", "cancelling")


class BatchRuns:
    """The batches of one server: started, resumed, cancelled.

    ``parallel`` is the server's ``num_parallel``: a batch runs one request fewer than that
    at a time (at least one), so an interactive client finds a sequence free.
    """

    def __init__(
        self,
        store: BatchStore,
        files: FileStore,
        parallel: int,
        api_key: str | None,
        shutting_down: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.files = files
        self.workers = max(1, parallel - 1)
        self._api_key = api_key
        #: whether the server is stopping: batches then stop where they are, to go on
        #: after the next start
        self.shutting_down = shutting_down
        self._active: set[str] = set()
        self._lock = threading.Lock()

    def start(self, app: Flask, batch_id: str) -> None:
        """Run the saved batch ``batch_id`` on its own thread (a greenlet in the server)."""
        with self._lock:
            if batch_id in self._active:
                return
            self._active.add(batch_id)
        thread = threading.Thread(
            target=self._run, args=(app, batch_id), name=f"batch {batch_id}", daemon=True
        )
        thread.start()

    def resume(self, app: Flask) -> None:
        """Go on with the batches a stop left running."""
        for batch in self.store.all():
            if batch["status"] in _RUNNING:
                self.start(app, batch["id"])

    def cancel(self, batch_id: str) -> dict[str, Any]:
        """Stop ``batch_id`` taking new requests; returns it (``cancelling`` while it winds
        down). One already finalizing or ended is returned as it is."""
        batch = self.store.get(batch_id)
        if batch["status"] not in ("validating", "in_progress"):
            return batch
        return self._update(batch_id, status="cancelling", cancelling_at=_now())

    def _update(self, batch_id: str, **changes: Any) -> dict[str, Any]:
        """Change the batch as stored; a ``cancelling`` one stays so until it ends."""
        batch = self.store.get(batch_id)
        if batch["status"] == "cancelling" and changes.get("status") in ("in_progress", None):
            changes.pop("status", None)
        batch.update(changes)
        self.store.save(batch)
        return batch

    def _cancelling(self, batch_id: str) -> bool:
        return bool(self.store.get(batch_id).get("cancelling_at"))

    def _run(self, app: Flask, batch_id: str) -> None:
        try:
            with self.store.running(batch_id) as ours:
                if ours:  # else another server on this home runs it
                    self._run_batch(app, batch_id)
        except Exception as exc:  # a broken disk, a bug: the batch says so, the server lives
            log.exception("batch %s failed", batch_id)
            try:
                error = {"code": "server_error", "message": str(exc)[:500]}
                self._update(batch_id, status="failed", failed_at=_now(), errors=_errors([error]))
            except PowerError:
                pass
        finally:
            with self._lock:
                self._active.discard(batch_id)

    def _run_batch(self, app: Flask, batch_id: str) -> None:
        batch = self.store.get(batch_id)
        requests: list[BatchRequest] = []
        if batch["status"] in ("validating", "in_progress"):
            read = self._requests(batch)
            if read is None:
                return
            requests = read
            if batch["status"] == "validating":
                batch = self._update(batch_id, status="in_progress", in_progress_at=_now())
        done = self.store.finished(batch_id)
        counts = {
            "total": len(requests) or batch["request_counts"]["total"],
            "completed": len(done["out"]),
            "failed": len(done["err"]),
        }
        batch = self._update(batch_id, request_counts=counts)
        waiting = [r for r in requests if r.custom_id not in done["out"] | done["err"]]
        if batch["status"] == "in_progress" and waiting:
            runner = RequestRunner(
                app, self._api_key, batch, self.store, self._stopping, self.shutting_down
            )
            runner.run(waiting, self.workers)
            batch = self._update(batch_id, request_counts=dict(runner.counts))
            if self.shutting_down():
                return  # the rest runs after the next start
        self._finalize(batch_id, requests)

    def _stopping(self, batch: dict[str, Any]) -> bool:
        if self.shutting_down() or time.time() >= batch["expires_at"]:
            return True
        return self._cancelling(batch["id"])

    def _requests(self, batch: dict[str, Any]) -> list[BatchRequest] | None:
        """The batch's requests; ``None`` when its input fails it (saved so, with what had
        finished when a resumed batch finds its input file deleted)."""
        endpoint = batch["endpoint"]
        try:
            requests, errors = run_on_native_thread(
                lambda: read_requests(self.files.read(batch["input_file_id"])[1], endpoint),
                "a3s-power-batch-input",
            )
        except PowerError as exc:
            errors = [{"code": "invalid_input_file", "message": exc.message, "line": None}]
            self._update(batch["id"], errors=_errors(errors))
            self._finalize(batch["id"], [], failed=True)
            return None
        if errors:
            self._update(batch["id"], status="failed", failed_at=_now(), errors=_errors(errors))
            self.store.drop_results(batch["id"])  # nothing ran; its lock goes too
            return None
        return requests

    def _finalize(
        self, batch_id: str, requests: list[BatchRequest], *, failed: bool = False
    ) -> None:
        batch = self._update(
            batch_id,
            status="finalizing",
            finalizing_at=self.store.get(batch_id).get("finalizing_at") or _now(),
        )
        expired = not batch.get("cancelling_at") and time.time() >= batch["expires_at"]
        if expired:
            self._report_unrun(batch, requests)
        files: dict[str, Any] = {
            "usage": run_on_native_thread(
                lambda: self.store.usage(batch_id), "a3s-power-batch-usage"
            )
        }
        for kind, field in (("out", "output_file_id"), ("err", "error_file_id")):
            made = run_on_native_thread(
                lambda kind=kind: self._results_file(batch_id, kind),  # type: ignore[misc]
                "a3s-power-batch-file",
            )
            if made is not None:
                files[field] = made
        if failed:
            ending: dict[str, Any] = {"status": "failed", "failed_at": _now()}
        elif batch.get("cancelling_at"):
            ending = {"status": "cancelled", "cancelled_at": _now()}
        elif expired:
            ending = {"status": "expired", "expired_at": _now()}
        else:
            ending = {"status": "completed", "completed_at": _now()}
        self._update(batch_id, **files, **ending)
        self.store.drop_results(batch_id)

    def _results_file(self, batch_id: str, kind: str) -> str | None:
        """A file of the ``kind`` log's results (streamed from the log), or ``None``."""
        path = self.store.synced_results(batch_id, kind)
        if path is None:
            return None
        name = f"{batch_id}_{'output' if kind == 'out' else 'error'}.jsonl"
        with open(path, "rb") as handle:
            return self.files.add(handle, name, "batch_output", None).id

    def _report_unrun(self, batch: dict[str, Any], requests: list[BatchRequest]) -> None:
        """Log the requests a batch that expired never ran, as OpenAI's do."""
        done = self.store.finished(batch["id"])
        for request in requests:
            if request.custom_id in done["out"] | done["err"]:
                continue
            error = {"code": "batch_expired", "message": "The batch expired before it ran."}
            line = {"id": None, "custom_id": request.custom_id, "response": None, "error": error}
            self.store.append_result(batch["id"], "err", line)


def new_batch(
    batch_id: str,
    input_file_id: str,
    endpoint: str,
    metadata: dict[str, str] | None,
) -> dict[str, Any]:
    """The batch object OpenAI's API returns when a batch is made (``validating``)."""
    created = _now()
    return {
        "id": batch_id,
        "object": "batch",
        "endpoint": endpoint,
        "errors": None,
        "input_file_id": input_file_id,
        "completion_window": "24h",
        "status": "validating",
        "output_file_id": None,
        "error_file_id": None,
        "created_at": created,
        "in_progress_at": None,
        "expires_at": created + WINDOW_SECONDS,
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "metadata": metadata,
        "usage": None,
    }


def _errors(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": data}


def _now() -> int:
    return int(time.time())

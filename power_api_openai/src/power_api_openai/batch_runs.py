"""Running batches: OpenAI's Batch API over this server's own endpoints.

A batch goes ``validating`` (its input file is read and every line checked; one bad line
fails it) → ``in_progress`` (its requests run, :attr:`BatchRuns.parallel` at a time, each
through the server's own route as a client's request would, so a batch's chat completion
is the one a client gets) → ``finalizing`` (its results become an output file of the
successes and an error file of the rest, ``purpose: batch_output``) → ``completed``. A
cancel stops it taking new requests (``cancelling``; those under way finish) and it ends
``cancelled`` with the results it has; one past its 24-hour window ends ``expired`` the
same way. Results are logged as they come (:mod:`power_api_openai.batch_store`), so after a
restart a batch goes on with the requests it had not finished.
"""

from __future__ import annotations

import io
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask

from power_api_openai.batch_input import MAX_INPUT_BYTES, BatchRequest, read_requests
from power_api_openai.batch_store import BatchStore
from power_api_openai.file_store import FileStore
from power_core.concurrency import run_on_native_thread
from power_core.errors import PowerError

log = logging.getLogger("power_api_openai")

#: OpenAI's only completion window, in seconds
WINDOW_SECONDS = 24 * 3600
#: how often a running batch's counts are written down (seconds)
SAVE_EVERY = 1.0
_RUNNING = ("validating", "in_progress", "finalizing", "cancelling")


class BatchRuns:
    """The batches of one server: started, resumed, cancelled."""

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
        #: whether the server is stopping: batches then stop where they are, to go on
        #: after the next start
        self.shutting_down = shutting_down
        self.parallel = max(1, parallel)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._cancelled: set[str] = set()
        self._active: set[str] = set()
        self._lock = threading.Lock()

    def start(self, app: Flask, batch: dict[str, Any]) -> None:
        """Run ``batch`` (saved already) on its own thread (a greenlet in the server)."""
        with self._lock:
            if batch["id"] in self._active:
                return
            self._active.add(batch["id"])
        thread = threading.Thread(
            target=self._run, args=(app, batch["id"]), name=f"batch {batch['id']}", daemon=True
        )
        thread.start()

    def resume(self, app: Flask) -> None:
        """Go on with the batches a stop left running."""
        for batch in self.store.all():
            if batch["status"] in _RUNNING:
                self.start(app, batch)

    def cancel(self, batch_id: str) -> dict[str, Any]:
        """Stop ``batch_id`` taking new requests; returns it (``cancelling`` while it winds
        down, or as it ended)."""
        batch = self.store.get(batch_id)
        if batch["status"] not in _RUNNING or batch["status"] == "cancelling":
            return batch
        with self._lock:
            self._cancelled.add(batch_id)
        batch.update(status="cancelling", cancelling_at=_now())
        self.store.save(batch)
        return batch

    def _run(self, app: Flask, batch_id: str) -> None:
        try:
            self._run_batch(app, batch_id)
        except Exception as exc:  # a broken disk, a bug: the batch says so, the server lives
            log.exception("batch %s failed", batch_id)
            try:
                batch = self.store.get(batch_id)
                batch.update(
                    status="failed",
                    failed_at=_now(),
                    errors=_errors([{"code": "server_error", "message": str(exc)[:500]}]),
                )
                self.store.save(batch)
            except PowerError:
                pass
        finally:
            with self._lock:
                self._active.discard(batch_id)
                self._cancelled.discard(batch_id)

    def _run_batch(self, app: Flask, batch_id: str) -> None:
        batch = self.store.get(batch_id)
        requests = self._requests(batch)
        if requests is None:
            return
        if batch["status"] == "validating":
            batch.update(status="in_progress", in_progress_at=_now())
            batch["request_counts"]["total"] = len(requests)
            self.store.save(batch)
        finished = self.store.finished(batch_id)
        waiting = [request for request in requests if request.custom_id not in finished]
        if batch["status"] == "in_progress" and waiting:
            self._run_requests(app, batch, waiting)
        if self.shutting_down():
            self._save_counts(batch)  # the rest runs after the next start
            return
        self._finalize(batch)

    def _requests(self, batch: dict[str, Any]) -> list[BatchRequest] | None:
        """The batch's requests; ``None`` when its input fails it (saved so)."""
        try:
            _, data = run_on_native_thread(
                lambda: self.files.read(batch["input_file_id"]), "a3s-power-batch-input"
            )
        except PowerError as exc:
            self._fail(batch, "invalid_input_file", exc.message)
            return None
        if len(data) > MAX_INPUT_BYTES:
            message = f"The input file has {len(data)} bytes; a batch reads {MAX_INPUT_BYTES}."
            self._fail(batch, "file_too_large", message)
            return None
        requests, errors = read_requests(data, batch["endpoint"])
        if errors:
            batch.update(status="failed", failed_at=_now(), errors=_errors(errors))
            self.store.save(batch)
            return None
        return requests

    def _fail(self, batch: dict[str, Any], code: str, message: str) -> None:
        batch.update(
            status="failed",
            failed_at=_now(),
            errors=_errors([{"code": code, "message": message, "param": None, "line": None}]),
        )
        self.store.save(batch)

    def _run_requests(self, app: Flask, batch: dict[str, Any], waiting: list[BatchRequest]) -> None:
        todo: queue.SimpleQueue[BatchRequest | None] = queue.SimpleQueue()
        for request in waiting:
            todo.put(request)
        counts = batch["request_counts"]
        saved = [time.monotonic()]
        lock = threading.Lock()

        def work() -> None:
            client = app.test_client()
            while not self._stopping(batch):
                try:
                    request = todo.get_nowait()
                except queue.Empty:
                    return
                if request is None:
                    return
                kind, line = self._call(client, batch["endpoint"], request)
                if self.shutting_down():
                    return  # refused or cut short by the stop: it runs after the next start
                with lock:
                    self.store.append_result(batch["id"], kind, line)
                    counts["completed" if kind == "out" else "failed"] += 1
                    if time.monotonic() - saved[0] >= SAVE_EVERY:
                        saved[0] = time.monotonic()
                        self._save_counts(batch)

        workers = [
            threading.Thread(target=work, name=f"batch {batch['id']} worker", daemon=True)
            for _ in range(min(self.parallel, len(waiting)))
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def _stopping(self, batch: dict[str, Any]) -> bool:
        cancelled = batch["id"] in self._cancelled
        return cancelled or self.shutting_down() or time.time() >= batch["expires_at"]

    def _save_counts(self, batch: dict[str, Any]) -> None:
        latest = self.store.get(batch["id"])  # a cancel may have changed its state meanwhile
        latest["request_counts"] = dict(batch["request_counts"])
        self.store.save(latest)
        batch.update({k: v for k, v in latest.items() if k != "request_counts"})

    def _call(
        self, client: Any, endpoint: str, request: BatchRequest
    ) -> tuple[str, dict[str, Any]]:
        reply = client.post(endpoint, json=request.body, headers=self._headers)
        body = reply.get_json(silent=True)
        line = {
            "id": f"batch_req_{secrets.token_hex(12)}",
            "custom_id": request.custom_id,
            "response": {
                "status_code": reply.status_code,
                "request_id": f"req_{secrets.token_hex(12)}",
                "body": body if body is not None else reply.get_data(as_text=True),
            },
            "error": None,
        }
        return ("out" if 200 <= reply.status_code < 300 else "err"), line

    def _finalize(self, batch: dict[str, Any]) -> None:
        latest = self.store.get(batch["id"])
        latest["request_counts"] = dict(batch["request_counts"])
        latest.update(status="finalizing", finalizing_at=latest.get("finalizing_at") or _now())
        self.store.save(latest)
        for kind, field in (("out", "output_file_id"), ("err", "error_file_id")):
            data = run_on_native_thread(
                lambda kind=kind: self.store.whole_results(latest["id"], kind),  # type: ignore[misc]
                "a3s-power-batch-results",
            )
            if data:
                name = f"{latest['id']}_{'output' if kind == 'out' else 'error'}.jsonl"
                made = run_on_native_thread(
                    lambda data=data, name=name: self.files.add(  # type: ignore[misc]
                        io.BytesIO(data), name, "batch_output", None
                    ),
                    "a3s-power-batch-file",
                )
                latest[field] = made.id
        if batch["id"] in self._cancelled or latest.get("cancelling_at"):
            latest.update(status="cancelled", cancelled_at=_now())
        elif time.time() >= latest["expires_at"]:
            latest.update(status="expired", expired_at=_now())
        else:
            latest.update(status="completed", completed_at=_now())
        self.store.save(latest)
        self.store.drop_results(latest["id"])


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
    }


def _errors(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": data}


def _now() -> int:
    return int(time.time())

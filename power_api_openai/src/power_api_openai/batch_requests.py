"""The requests of a running batch, sent through the server's own routes.

Each goes through the Flask app as a client's request would (a test client: the same
routes, checks and answers), a few at a time on their own threads (greenlets in the
server). A request the server turns away for now (503: its queue is full, 429) waits and
is sent again, as a client that retries would; it is no result. Each answer is logged as
it comes, and the request log gets a line for each, as for a client's request.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask

from power_api_openai.batch_input import BatchRequest
from power_api_openai.batch_store import BatchStore

log = logging.getLogger("power_api_openai")

#: how often a running batch's counts are written down (seconds)
SAVE_EVERY = 1.0
#: the first and the longest wait before a request turned away is sent again (seconds)
RETRY_WAITS = (0.5, 8.0)
_TURNED_AWAY = (429, 503)


class RequestRunner:
    """Sends a batch's waiting requests; :attr:`counts` follows the results."""

    def __init__(
        self,
        app: Flask,
        api_key: str | None,
        batch: dict[str, Any],
        store: BatchStore,
        stopping: Callable[[dict[str, Any]], bool],
        server_stopping: Callable[[], bool],
    ) -> None:
        self._app = app
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._batch = batch
        self._store = store
        self._stopping = stopping
        self._server_stopping = server_stopping
        self.counts = dict(batch["request_counts"])
        self._lock = threading.Lock()

    def run(self, waiting: list[BatchRequest], workers: int) -> None:
        """Send ``waiting`` until done, or until the batch stops (a cancel, its window,
        the server's stop); returns when the requests under way have finished."""
        todo: queue.SimpleQueue[BatchRequest] = queue.SimpleQueue()
        for request in waiting:
            todo.put(request)
        saved = [time.monotonic()]

        def work() -> None:
            client = self._app.test_client()
            while not self._stopping(self._batch):
                try:
                    request = todo.get_nowait()
                except queue.Empty:
                    return
                answer = self._send(client, request)
                if answer is None:
                    return  # stopped while it was turned away: it runs after the next start
                kind, line = answer
                with self._lock:
                    self._store.append_result(self._batch["id"], kind, line)
                    self.counts["completed" if kind == "out" else "failed"] += 1
                    if time.monotonic() - saved[0] >= SAVE_EVERY:
                        saved[0] = time.monotonic()
                        self._save_counts()

        threads = [
            threading.Thread(target=work, name=f"batch {self._batch['id']} worker", daemon=True)
            for _ in range(min(workers, len(waiting)))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _save_counts(self) -> None:
        latest = self._store.get(self._batch["id"])
        latest["request_counts"] = dict(self.counts)
        self._store.save(latest)

    def _send(self, client: Any, request: BatchRequest) -> tuple[str, dict[str, Any]] | None:
        """The request's result (``out`` or ``err``, and its line); ``None`` when the batch
        stopped while the server turned the request away."""
        endpoint = self._batch["endpoint"]
        wait, longest = RETRY_WAITS
        while True:
            started = time.monotonic()
            reply = client.post(endpoint, json=request.body, headers=self._headers)
            log.info(
                "batch %s: POST %s (%s) %d in %.0f ms",
                self._batch["id"],
                endpoint,
                request.custom_id[:80],
                reply.status_code,
                (time.monotonic() - started) * 1000,
            )
            if self._server_stopping():
                return None  # refused or cut short by the server's stop: it runs again later
            if reply.status_code not in _TURNED_AWAY:
                break
            if self._stopping(self._batch):
                return None
            time.sleep(wait)
            wait = min(wait * 2, longest)
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

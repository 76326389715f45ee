"""Long library operations (pull, create) whose progress is streamed to the client.

The library reports progress through a callback on the greenlet that runs the operation.
Running it on a greenlet of its own and passing every report through a gevent queue lets
the response generator stream them as they come; if the client goes away the operation
still finishes (a pull shared with other clients, or resumable later, is not wasted).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.queue

from power_core.sources import ProgressCallback, PullProgress

log = logging.getLogger("power_api_ollama")

_FINISHED = object()


def progress_json(progress: PullProgress) -> dict[str, Any]:
    """Ollama's ``ProgressResponse``: ``status`` plus ``digest``, ``total``, ``completed``."""
    payload: dict[str, Any] = {"status": progress.status}
    if progress.digest is not None:
        payload["digest"] = progress.digest
    if progress.total is not None:
        payload["total"] = progress.total
    if progress.completed is not None:
        payload["completed"] = progress.completed
    return payload


class ProgressRun:
    """Runs ``work(progress)`` on its own greenlet; iterate to receive its reports.

    Iteration ends when the work returns and re-raises what it raised, so an error
    before the first report can still become a proper HTTP status.
    """

    def __init__(self, work: Callable[[ProgressCallback], object]) -> None:
        self._queue: gevent.queue.Queue = gevent.queue.Queue()
        self._greenlet = gevent.spawn(self._run, work)

    def _run(self, work: Callable[[ProgressCallback], object]) -> None:
        try:
            work(self._queue.put)
        except Exception as exc:  # handed to the consumer, which raises or reports it
            self._queue.put(exc)
        else:
            self._queue.put(_FINISHED)

    def __iter__(self) -> Iterator[PullProgress]:
        while True:
            item = self._queue.get()
            if item is _FINISHED:
                return
            if isinstance(item, Exception):
                raise item
            yield item

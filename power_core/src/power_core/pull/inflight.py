"""One download per reference: concurrent pulls of the same thing in a process share it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from power_core.sources import ProgressCallback, PullProgress

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Job(Generic[T]):
    def __init__(self) -> None:
        self.listeners: list[ProgressCallback] = []
        self.last: PullProgress | None = None
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None

    def emit(self, progress: PullProgress) -> None:
        self.last = progress
        for listener in list(self.listeners):
            try:
                listener(progress)
            except Exception:
                # A listener whose client went away must not stop the download the
                # other listeners are waiting for.
                log.warning("dropping a pull progress listener that failed", exc_info=True)
                self.listeners.remove(listener)


class InflightDownloads(Generic[T]):
    """Runs ``work`` once per key at a time; callers arriving meanwhile wait and share.

    Every caller's progress callback receives the shared download's progress from the
    moment it joins (the latest report first). The result or the error is shared too.
    Works with real threads and with gevent's patched ``threading``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job[T]] = {}

    def run(
        self,
        key: str,
        work: Callable[[ProgressCallback], T],
        progress: ProgressCallback,
    ) -> T:
        """Run ``work(emit)`` for ``key`` or join the run already in flight."""
        with self._lock:
            job = self._jobs.get(key)
            owner = job is None
            if job is None:
                job = _Job()
                self._jobs[key] = job
            job.listeners.append(progress)
            last = job.last
        if not owner:
            if last is not None:
                progress(last)
            job.done.wait()
            if job.error is not None:
                raise job.error
            assert job.result is not None
            return job.result
        try:
            job.result = work(job.emit)
            return job.result
        except BaseException as exc:
            job.error = exc
            raise
        finally:
            with self._lock:
                del self._jobs[key]
            job.done.set()

    def in_flight(self) -> list[str]:
        """Keys being downloaded now."""
        with self._lock:
            return list(self._jobs)

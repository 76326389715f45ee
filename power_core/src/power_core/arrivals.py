"""Generation requests on their way to an engine, so that an idle engine starts a burst as one.

Simultaneous requests reach an engine one after another: the server reads and translates
them on one thread, a few milliseconds each. An idle engine that started the first at once
would decode that prompt alone while the server, competing with the engine for the cores,
reads the rest; they would then wait for that step to end. (Eight clients at once, this
project's benchmark machine: the first prompt alone took 104 ms, the other seven started
after it, ad hoc timeline.) Instead:

- a request whose engine has nothing to do counts itself as on its way
  (:meth:`ArrivingRequests.on_the_way`) and, before it queues its job, lets the server read
  every request that has already arrived (:func:`let_arrived_requests_in`); those find the
  engine still idle and do the same;
- an engine about to start from idle waits, a few milliseconds at most, until no request
  is on its way (:meth:`ArrivingRequests.wait_until_none_on_the_way`), and so starts them
  in one step.

A lone request waits for neither: nothing else is on its way, and under gevent the hub has
nothing else to do.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from power_core.concurrency import allocate_native_lock, patched_gevent

#: how often an engine looks again while it waits (an arriving job also wakes it)
POLL_SECONDS = 0.0005
#: the most a request waits for the server to catch up: a hub that is never idle (a greenlet
#: yielding in a loop keeps gevent's idle watchers from ever running) delays it no longer
CATCH_UP_LIMIT_SECONDS = 0.025


class ArrivingRequests:
    """A count of generation requests between "my engine is idle" and their job queued."""

    def __init__(self) -> None:
        self._lock = allocate_native_lock()
        self._count = 0

    def count(self) -> int:
        """Requests on their way now (read without a lock: it is one int)."""
        return self._count

    @contextlib.contextmanager
    def on_the_way(self) -> Iterator[None]:
        """Count the calling request while the block runs; the block ends after the job is
        queued, so a waiting engine finds the job when the count drops."""
        with self._lock:
            self._count += 1
        try:
            yield
        finally:
            with self._lock:
                self._count -= 1

    def wait_until_none_on_the_way(self, sleep: Callable[[float], object], limit: float) -> float:
        """Wait until no request is on its way, or ``limit`` seconds; returns seconds waited.

        ``sleep(seconds)`` is the engine's own wait, one that a newly queued job cuts short.
        """
        start = time.monotonic()
        deadline = start + limit
        while self._count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sleep(min(remaining, POLL_SECONDS))
        return time.monotonic() - start


#: the process's requests: one server, however many engines
ARRIVING = ArrivingRequests()


def let_arrived_requests_in() -> None:
    """Under gevent, return once the hub has nothing else to do (every request that has
    already arrived has been read up to its own wait here), or after
    :data:`CATCH_UP_LIMIT_SECONDS`. Elsewhere (the CLI) a no-op."""
    if patched_gevent():
        import gevent

        with gevent.Timeout(CATCH_UP_LIMIT_SECONDS, False):
            gevent.idle()

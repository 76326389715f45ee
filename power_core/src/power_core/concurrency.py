"""Handing work and results between native engine threads and the server's greenlets.

The HTTP server runs on gevent with the standard library monkey-patched, so
``threading.Thread`` would give a greenlet and ``threading.Lock`` a gevent lock. An engine
makes blocking ctypes calls into llama.cpp, which would freeze every greenlet, so it must
run on a real OS thread and use only real OS locks. Results travel back through a
:class:`EventChannel`: the producer (any thread) appends to a ``deque`` and pokes a waker;
under gevent the waker is the hub's ``async_`` watcher, whose ``send()`` is the one gevent
call documented as safe from other threads; without gevent (the CLI) it is an OS lock.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import sys
from collections import deque
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def _patched_gevent_monkey() -> ModuleType | None:
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        return monkey
    return None


def patched_gevent() -> bool:
    """True in a process whose ``threading`` gevent has patched (the server)."""
    return _patched_gevent_monkey() is not None


def _original(module: str, name: str) -> Any:
    monkey = _patched_gevent_monkey()
    if monkey is not None:
        return monkey.get_original(module, name)
    return getattr(__import__(module), name)


def unpatched(module: str, name: str) -> Any:
    """``module.name`` as the standard library defines it, even under gevent's patching."""
    return _original(module, name)


def allocate_native_lock() -> Any:
    """A real OS lock, even when gevent has patched ``threading``."""
    return _original("_thread", "allocate_lock")()


def start_native_thread(target: Callable[[], None], name: str) -> int:
    """Run ``target`` on a new OS thread (never a greenlet); returns the thread id."""

    def run() -> None:
        threading = sys.modules.get("threading")
        if threading is not None and not patched_gevent():
            threading.current_thread().name = name
        target()

    return int(_original("_thread", "start_new_thread")(run, ()))


class WakeSignal:
    """A flag that one OS thread sleeps on and any thread or greenlet sets without blocking."""

    def __init__(self) -> None:
        self._lock = allocate_native_lock()
        self._lock.acquire()  # held means "not signalled"

    def set(self) -> None:
        """Wake the sleeper (idempotent)."""
        with contextlib.suppress(RuntimeError):  # already signalled
            self._lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until set or ``timeout`` seconds pass; consumes the signal. True if set."""
        return bool(self._lock.acquire(timeout=-1 if timeout is None else timeout))


#: the OS thread this module was imported on: the main thread, where the server's hub runs
_IMPORTED_ON = _original("_thread", "get_ident")()


def _thread_hub() -> Any:
    """The gevent hub to wait on in this thread under the server, or ``None`` to wait on
    an OS lock: without gevent, and on a native thread (an engine's, one that unloads a
    model) that has no hub. Asking gevent for a hub there would make one, with an epoll
    and an eventfd descriptor that outlive the thread: two lost per model unloaded. The
    main thread gets its hub, made now if need be (the server's, where greenlets run)."""
    if not patched_gevent():
        return None
    import gevent

    if _original("_thread", "get_ident")() == _IMPORTED_ON:
        return gevent.get_hub()
    try:  # gevent's own helper (since 20.x), not exported at the top of the package
        from gevent._hub_local import get_hub_if_exists
    except ImportError:  # pragma: no cover - a gevent that moved it: the old behaviour
        return gevent.get_hub()
    return get_hub_if_exists()


class _Waker:
    """Wakes a consumer from another thread; cooperative under gevent, an OS lock otherwise.

    Under gevent (on the thread of the server's hub) the hub's ``async_`` watcher stays
    started for the waker's life: its
    callback runs on the hub, sets a flag and switches to the waiting greenlet, if any. That
    is one ``Waiter`` per wait and no timer; a stream waits once per token, and a gevent
    ``Event`` waited on with a timeout cost 18-20 us of CPU per item against 14-18 us
    (a native thread feeding a greenlet every 0.5 ms, idle machine).
    """

    def __init__(self) -> None:
        self._async: Any = None
        self._hub: Any = None
        self._signal: WakeSignal | None = None
        self._woken = False
        self._waiter: Any = None
        # the producer may still wake after the consumer has gone (a cancelled job's last
        # events): wake() and close() take this OS lock so a closed waker is never poked
        self._guard = allocate_native_lock()
        self._closed = False
        hub = _thread_hub()
        if hub is not None:
            self._hub = hub
            self._async = hub.loop.async_()
            self._async.start(self._on_wake)
        else:
            self._signal = WakeSignal()

    def wake(self) -> None:
        with self._guard:
            if self._closed:
                return
            if self._async is not None:
                self._async.send()
            elif self._signal is not None:
                self._signal.set()

    def _on_wake(self) -> None:
        # on the hub: the only other place that touches _woken and _waiter is the consumer,
        # a greenlet of the same thread, so no lock is needed
        self._woken = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.switch(None)

    def prepare(self) -> None:
        """Call before re-checking for items, so a wake after the check is not lost."""
        self._woken = False

    def wait(self) -> None:
        """Until the next wake (one after :meth:`prepare` returns at once)."""
        if self._signal is not None:
            # the lock stays released after a wake, so none is lost; the timeout only
            # bounds each wait of the loop around it
            self._signal.wait(0.5)
            return
        if self._woken:
            return
        from gevent.hub import Waiter, get_hub

        if get_hub() is not self._hub:  # its wake-ups would never reach this thread
            raise RuntimeError("a channel is waited on only by the thread that created it")

        waiter = Waiter()
        self._waiter = waiter
        try:
            waiter.get()
        finally:
            self._waiter = None

    def close(self) -> None:
        with self._guard:
            self._closed = True
            if self._async is not None:
                self._async.close()
                self._async = None


class Delivery(enum.Enum):
    """What a handler did with an item (see :meth:`EventChannel.deliver_while_waiting`)."""

    #: dealt with: the consumer never sees it
    TAKEN = "taken"
    #: the consumer gets this one as usual; the handler sees the next
    QUEUED = "queued"
    #: the consumer gets this one and every later one; the handler is dropped
    DECLINED = "declined"


class EventChannel(Generic[T]):
    """A one-consumer stream of items produced on another thread.

    Create it on the consuming side. The producer calls :meth:`put` and finally
    :meth:`close`; iterating yields items until the channel is closed and drained.
    :meth:`cancel` runs the ``on_cancel`` callback once (the engine then drops the job).

    With :meth:`deliver_while_waiting` the consumer lets the producer's thread handle
    items itself while the consumer waits for the next one: a streamed token then reaches
    its client without waking the server's thread (see :mod:`power_core.server.direct`).
    """

    def __init__(self, on_cancel: Callable[[], None] | None = None) -> None:
        self._items: deque[T] = deque()
        self._closed = False
        self._error: BaseException | None = None
        self._waker = _Waker()
        self._on_cancel = on_cancel
        self._cancelled = False
        #: deals with items on the producer's thread while the consumer waits
        self._handler: Callable[[T], Delivery] | None = None
        #: the consumer waits in __iter__ with nothing left to do: the handler may run
        self._consumer_waiting = False
        self._handler_lock = allocate_native_lock()

    # producer side (any thread) ---------------------------------------------------------
    def put(self, item: T) -> None:
        """Hand the item to the consumer's handler, or else append it and wake the consumer."""
        if self._handler is not None and self._consumer_waiting and self._take(item):
            return
        self._items.append(item)
        self._waker.wake()

    def _take(self, item: T) -> bool:
        with self._handler_lock:
            handler = self._handler
            # re-checked under the lock: the consumer stops waiting under it too
            if handler is None or not self._consumer_waiting or self._items:
                return False
            delivery = handler(item)
            if delivery is Delivery.DECLINED:
                self._handler = None  # this and every later item go through the queue
            return delivery is Delivery.TAKEN

    def close(self, error: BaseException | None = None) -> None:
        """No more items; the consumer re-raises ``error`` after draining, if given."""
        self._error = error
        self._closed = True
        self._waker.wake()

    # consumer side ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[T]:
        try:
            while True:
                while self._items:
                    yield self._items.popleft()
                if self._closed:
                    while self._items:
                        yield self._items.popleft()
                    if self._error is not None:
                        raise self._error
                    return
                self._waker.prepare()
                if self._items or self._closed:
                    continue
                self._wait()
        finally:
            self._waker.close()

    def _wait(self) -> None:
        if self._handler is None:
            self._waker.wait()
            return
        with self._handler_lock:
            self._consumer_waiting = True
        try:
            self._waker.wait()
        finally:
            # once this returns no handler call is running, and none starts until the
            # consumer waits again: what it does meanwhile never overlaps the handler
            with self._handler_lock:
                self._consumer_waiting = False

    def deliver_while_waiting(self, handler: Callable[[T], Delivery]) -> None:
        """From now on, while the consumer waits with nothing queued, the producer's thread
        offers each item to ``handler`` first.

        ``handler`` says what became of the item (:class:`Delivery`). It runs under a lock
        that the consumer takes to stop waiting, so it never overlaps the consumer's own
        work; it must be quick, must not block, and must not raise.
        """
        with self._handler_lock:
            self._handler = handler

    def cancel(self) -> None:
        """Ask the producer to stop; safe to call more than once."""
        if not self._cancelled:
            self._cancelled = True
            if self._on_cancel is not None:
                self._on_cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled


class OneShot(Generic[T]):
    """A single result (or error) computed on another thread, awaited cooperatively."""

    def __init__(self) -> None:
        self._channel: EventChannel[T] = EventChannel()

    def set_result(self, value: T) -> None:
        self._channel.put(value)
        self._channel.close()

    def set_error(self, error: BaseException) -> None:
        self._channel.close(error)

    def wait(self) -> T:
        for value in self._channel:
            return value
        raise RuntimeError("OneShot closed without a result")


def run_on_native_thread(fn: Callable[[], T], name: str) -> T:
    """Run a blocking call on a fresh OS thread and wait for it without blocking greenlets."""
    result: OneShot[T] = OneShot()
    start_native_thread(_settling(fn, result), name)
    return result.wait()


def _settling(fn: Callable[[], T], result: OneShot[T]) -> Callable[[], None]:
    """``fn`` made to hand its result, or its error, to ``result``."""

    def work() -> None:
        try:
            result.set_result(fn())
        except BaseException as exc:  # handed to the waiting side, which re-raises it
            result.set_error(exc)

    return work


class NativeWorkers:
    """At most ``count`` OS threads, started as work comes and ending when none is left,
    that run blocking calls for callers who wait without blocking greenlets: a flood of
    such calls (long prompts to tokenize) queues instead of starting a thread each."""

    def __init__(self, count: int, name: str) -> None:
        self._count = count
        self._name = name
        self._lock = allocate_native_lock()
        self._pending: collections.deque[Callable[[], None]] = collections.deque()
        self._running = 0

    def run(self, fn: Callable[[], T]) -> T:
        result: OneShot[T] = OneShot()
        with self._lock:
            self._pending.append(_settling(fn, result))
            start = self._running < self._count
            if start:
                self._running += 1
        if start:
            start_native_thread(self._work, self._name)
        return result.wait()

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._running -= 1
                    return
                task = self._pending.popleft()
            task()

"""The channel that carries events from native engine threads to consumers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from power_core.concurrency import (
    Delivery,
    EventChannel,
    NativeWorkers,
    WakeSignal,
    run_on_native_thread,
    start_native_thread,
)


def test_channel_delivers_in_order_from_another_thread() -> None:
    channel: EventChannel[int] = EventChannel()

    def produce() -> None:
        for i in range(1000):
            channel.put(i)
        channel.close()

    start_native_thread(produce, "producer")
    assert list(channel) == list(range(1000))


def test_channel_reraises_the_producers_error_after_draining() -> None:
    channel: EventChannel[int] = EventChannel()
    channel.put(1)
    channel.close(ValueError("boom"))
    seen = []
    try:
        for item in channel:
            seen.append(item)
    except ValueError as exc:
        assert str(exc) == "boom"
    else:
        raise AssertionError("error not raised")
    assert seen == [1]


def test_cancel_runs_the_callback_once() -> None:
    calls = []
    channel: EventChannel[int] = EventChannel(on_cancel=lambda: calls.append(1))
    channel.cancel()
    channel.cancel()
    assert calls == [1] and channel.cancelled


def test_wake_signal_wakes_a_sleeping_thread() -> None:
    signal = WakeSignal()
    assert signal.wait(0.01) is False
    signal.set()
    signal.set()  # idempotent
    assert signal.wait(1) is True


def test_native_result_and_error() -> None:
    assert run_on_native_thread(lambda: 6 * 7, "t") == 42


def test_under_gevent_a_native_producer_does_not_block_greenlets() -> None:
    # the consumer waits cooperatively, so another greenlet keeps running meanwhile
    script = textwrap.dedent(
        """
        from gevent import monkey; monkey.patch_all()
        import time, gevent
        from power_core.concurrency import EventChannel, start_native_thread
        channel = EventChannel()
        def produce():
            for i in range(5):
                time.sleep(0.05)   # a real OS sleep: this is a native thread
                channel.put(i)
            channel.close()
        ticks = []
        def ticker():
            for _ in range(10):
                ticks.append(1); gevent.sleep(0.02)
        t = gevent.spawn(ticker)
        start_native_thread(produce, "p")
        items = list(channel)
        ticks_while_waiting = len(ticks)
        t.join()
        assert items == [0, 1, 2, 3, 4], items
        # a blocking wait would have starved the ticker until the channel closed
        assert ticks_while_waiting >= 5, ticks_while_waiting
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_under_gevent_a_channel_waited_on_by_another_thread_fails_loudly() -> None:
    # its wake-ups go to the hub of the thread that made it: waiting elsewhere would hang
    script = textwrap.dedent(
        """
        from gevent import monkey; monkey.patch_all()
        from power_core.concurrency import EventChannel, run_on_native_thread
        channel = EventChannel()
        def wait_elsewhere():
            try:
                next(iter(channel))
            except RuntimeError as exc:
                return str(exc)
            return "no error"
        print(run_on_native_thread(wait_elsewhere, "elsewhere"))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert "only by the thread that created it" in result.stdout, result.stderr


def test_producer_may_keep_putting_after_the_consumer_left() -> None:
    # a cancelled job's last events arrive after its consumer stopped iterating; under
    # gevent that used to raise on the producer (engine) thread and kill it
    script = textwrap.dedent(
        """
        from gevent import monkey; monkey.patch_all()
        import gc
        from power_core.concurrency import EventChannel, run_on_native_thread
        channel = EventChannel()
        channel.put(1)
        for _ in channel:
            break
        gc.collect()
        errors = []
        def produce():
            try:
                channel.put(2)
                channel.close()
            except BaseException as exc:
                errors.append(repr(exc))
            return True
        assert run_on_native_thread(produce, "late-producer")
        print("errors:", errors)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "errors: []", result.stdout + result.stderr


def test_a_waiting_consumer_lets_the_producer_handle_items_until_one_is_declined() -> None:
    channel: EventChannel[int] = EventChannel()
    handled: list[int] = []

    def handler(item: int) -> Delivery:
        handled.append(item)
        if item == 2:
            return Delivery.QUEUED  # this one to the consumer, the handler stays
        return Delivery.TAKEN if item < 3 else Delivery.DECLINED

    consumed: list[int] = []

    def consume() -> None:
        for item in channel:
            consumed.append(item)

    start_native_thread(consume, "consumer")
    channel.deliver_while_waiting(handler)
    for item in (1, 2, 3):
        deadline = time.monotonic() + 10
        while (channel._items or not channel._consumer_waiting) and time.monotonic() < deadline:
            time.sleep(0.001)  # each item finds the consumer waiting with nothing queued
        channel.put(item)
    channel.put(4)
    channel.put(5)
    channel.close()
    deadline = time.monotonic() + 10
    while consumed[-1:] != [5] and time.monotonic() < deadline:
        time.sleep(0.001)
    # 1 was taken and 2 queued; 3 was declined, so it and every later item is queued
    assert handled == [1, 2, 3]
    assert consumed == [2, 3, 4, 5]


def test_items_queued_before_the_consumer_waits_are_never_overtaken() -> None:
    channel: EventChannel[int] = EventChannel()
    handled: list[int] = []
    channel.put(1)
    channel.deliver_while_waiting(lambda item: handled.append(item) or Delivery.TAKEN)
    channel.put(2)  # the consumer has not waited yet: queued behind 1
    channel.close()
    assert list(channel) == [1, 2] and handled == []


def test_native_workers_run_no_more_calls_at_once_than_they_are() -> None:
    """Twelve callers at once share two OS threads; each gets its own result or error, and
    the threads end when no work is left."""
    import threading

    workers = NativeWorkers(2, "test-workers")
    guard = threading.Lock()
    active = [0, 0]  # now, most at once
    results: dict[int, object] = {}

    def task(number: int) -> int:
        with guard:
            active[0] += 1
            active[1] = max(active[1], active[0])
        time.sleep(0.02)
        with guard:
            active[0] -= 1
        if number == 7:
            raise ValueError("seven")
        return number * number

    def call(number: int) -> None:
        try:
            results[number] = workers.run(lambda: task(number))
        except ValueError as exc:
            results[number] = exc

    callers = [threading.Thread(target=call, args=(n,)) for n in range(12)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert active[1] <= 2
    assert {n: r for n, r in results.items() if n != 7} == {n: n * n for n in range(12) if n != 7}
    assert isinstance(results[7], ValueError)
    assert workers._running == 0  # every worker ended with the work

"""Decoding threads follow the cores other processes leave: a real busy process takes a
core, and the engine decodes on the one left; without it, on all it was loaded with."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from power_backend_llamacpp import LlamaCppEngine
from power_backend_llamacpp.cpu_share import ThreadGovernor, busy_seconds, threads_for

from .conftest import load_engine, run

SPIN = "while True: pass"


@contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """``count`` processes, each keeping a core busy."""
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(count)]
    try:
        time.sleep(0.2)  # started and spinning
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def others_take_all_cores_but_one() -> int:
    return len(os.sched_getaffinity(0)) - 1


@pytest.mark.parametrize(
    ("cores", "others", "most", "expected"),
    [
        (2, 0.0, 2, 2),
        (2, 0.3, 2, 2),  # a light load: both threads still decode faster than one
        (2, 0.5, 2, 1),
        (2, 1.0, 2, 1),
        (2, 2.0, 2, 1),  # never fewer than one
        (8, 3.0, 4, 4),  # never more than loaded with
        (8, 5.2, 4, 3),  # 0.2 of a core taken still leaves it free
        (4, -0.2, 4, 4),  # readings a tick apart can dip below zero
    ],
)
def test_threads_for_the_cores_left(cores: int, others: float, most: int, expected: int) -> None:
    assert threads_for(cores, others, most) == expected


def test_busy_seconds_reads_the_cores_asked_for(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text(
        "cpu  500 0 100 1000 50 0 0 0 0 0\n"
        "cpu0 300 0 50 400 20 0 0 0 0 0\n"
        "cpu1 200 0 50 600 30 0 0 10 0 0\n"
        "intr 12345\n"
    )
    ticks = os.sysconf("SC_CLK_TCK")
    assert busy_seconds({0}, stat) == pytest.approx(350 / ticks)
    assert busy_seconds({0, 1}, stat) == pytest.approx((350 + 260) / ticks)  # steal counts
    assert busy_seconds({0}, tmp_path / "missing") is None
    real = busy_seconds(os.sched_getaffinity(0))
    assert real is not None and real > 0


class Readings:
    """A clock and the machine's busy seconds, stepped by the test: ``others`` cores busy
    for the next quarter second (this process being idle meanwhile)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.busy = 1000.0

    def clock(self) -> float:
        return self.now

    def read(self, _cpus: set[int]) -> float:
        return self.busy

    def advance(self, others: float) -> None:
        self.now += 0.25
        self.busy += others * 0.25


def test_one_busy_reading_is_not_a_load_two_are() -> None:
    readings = Readings()
    applied: list[int] = []
    governor = ThreadGovernor(
        2, applied.append, clock=readings.clock, busy=readings.read, cpus={0, 1}
    )
    governor.before_decode()  # the first reading
    for others in (1.0, 0.0, 1.0, 0.0):  # another process's threads spinning down
        readings.advance(others)
        governor.before_decode()
    assert applied == [] and governor.threads == 2
    for _ in range(2):
        readings.advance(1.0)
        governor.before_decode()
    assert applied == [1]
    readings.advance(0.0)  # more comes back at once
    governor.before_decode()
    assert applied == [1, 2]


def drive(governor: ThreadGovernor, seconds: float, done: Callable[[], bool]) -> None:
    """Call ``before_decode`` as an engine does, until ``done`` or ``seconds`` pass."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and not done():
        governor.before_decode()
        time.sleep(0.01)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: never more than 1")
def test_the_governor_gives_up_a_core_another_process_takes_and_takes_it_back() -> None:
    applied: list[int] = []
    cores = len(os.sched_getaffinity(0))
    governor = ThreadGovernor(cores, applied.append)
    with busy_processes(others_take_all_cores_but_one()):
        drive(governor, 5, lambda: governor.threads == 1)
        assert governor.threads == 1 and applied[-1] == 1
    drive(governor, 10, lambda: governor.threads == cores)
    assert governor.threads == cores and applied[-1] == cores


@pytest.mark.model
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: never more than 1")
def test_an_engine_decodes_on_the_cores_left(engine: LlamaCppEngine, model_path: Path) -> None:
    story = "Once upon a time"
    assert engine.decode_threads == 2
    fixed = load_engine(model_path, adapt_threads=False)
    try:
        with busy_processes(others_take_all_cores_but_one()):
            for _ in range(20):
                run(engine, story, max_tokens=48)
                if engine.decode_threads == 1:
                    break
            assert engine.decode_threads == 1
            run(fixed, story, max_tokens=48)
            assert fixed.decode_threads == 2  # adapt_threads: false keeps them all
        for _ in range(40):
            run(engine, story, max_tokens=48)
            if engine.decode_threads == 2:
                break
        assert engine.decode_threads == 2
    finally:
        fixed.close()

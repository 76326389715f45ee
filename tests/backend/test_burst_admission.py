"""An idle engine waits for the generation requests still on their way, then starts them in
one step (:mod:`power_core.arrivals`), on the real model.

The engine logs, at debug level, how many jobs each step admitted; these tests read that
log. A test holding :meth:`ArrivingRequests.on_the_way` stands for a request the server is
still reading.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from power_backend_llamacpp import engine as engine_module
from power_backend_llamacpp.engine import LlamaCppEngine
from power_core.arrivals import ARRIVING
from power_core.engine import CompletionJob
from power_core.types import EngineEvent

from .conftest import GREEDY, text

BATCHING_LOG = "power_backend_llamacpp.batching"
ENGINE_LOG = "power_backend_llamacpp.engine"


def admissions(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The admission messages, without the sequence ids (which earlier jobs' caches decide)."""
    messages = [r.getMessage() for r in caplog.records if r.name == BATCHING_LOG]
    return [m.split(" in sequences")[0] for m in messages if "admitted" in m]


def waits(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == ENGINE_LOG and "waited" in r.msg]


def collect(stream: object, into: list[EngineEvent]) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.extend(stream))  # type: ignore[call-overload]
    thread.start()
    return thread


def job(prompt: str) -> CompletionJob:
    return CompletionJob(prompt, sampling=GREEDY, max_tokens=4)


def test_jobs_queued_while_a_request_is_on_its_way_start_in_one_step(
    engine: LlamaCppEngine, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "BURST_WAIT_SECONDS", 30.0)
    caplog.set_level(logging.DEBUG)
    first: list[EngineEvent] = []
    second: list[EngineEvent] = []
    with ARRIVING.on_the_way():
        readers = [collect(engine.submit(job("The capital of France is")), first)]
        time.sleep(0.3)
        assert admissions(caplog) == []  # the first job waits for the one on its way
        assert first == []
        readers.append(collect(engine.submit(job("Water boils at")), second))
    for reader in readers:
        reader.join(timeout=60)
    assert text(first) and text(second)
    assert admissions(caplog) == ["2 job(s) admitted, 2 running"]
    assert len(waits(caplog)) == 1


def test_a_lone_job_does_not_wait(engine: LlamaCppEngine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    events = list(engine.submit(job("The quick brown fox")))
    assert text(events)
    assert waits(caplog) == []
    assert admissions(caplog) == ["1 job(s) admitted, 1 running"]


def test_a_request_that_never_arrives_delays_the_engine_only_so_long(
    engine: LlamaCppEngine, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "BURST_WAIT_SECONDS", 0.05)
    caplog.set_level(logging.DEBUG)
    with ARRIVING.on_the_way():  # held for the whole job
        events = list(engine.submit(job("Rain falls because")))
    assert text(events)
    assert len(waits(caplog)) == 1


def test_a_busy_engine_never_waits(
    engine: LlamaCppEngine, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "BURST_WAIT_SECONDS", 30.0)
    caplog.set_level(logging.DEBUG)
    running: list[EngineEvent] = []
    long_job = CompletionJob("Once upon a time", sampling=GREEDY, max_tokens=64)
    reader = collect(engine.submit(long_job), running)
    while not admissions(caplog):
        time.sleep(0.005)
    with ARRIVING.on_the_way():  # would hold an idle engine for 30 s
        events = list(engine.submit(job("Cats like to")))
    reader.join(timeout=60)
    assert text(events) and text(running)
    assert waits(caplog) == []

"""An idle engine hands its thread back (and with it llama.cpp's OpenMP team), and starts a
new one for the next job; closing an engine without a thread still frees it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from power_backend_llamacpp import engine as engine_module
from power_core.engine import CompletionJob

from .conftest import GREEDY, load_engine, text


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _wait_for_threads(count: int, seconds: float = 30) -> int:
    deadline = time.monotonic() + seconds
    while _threads() > count and time.monotonic() < deadline:
        time.sleep(0.05)
    return _threads()


def test_an_idle_engine_ends_its_thread_and_restarts_for_work(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "IDLE_THREAD_SECONDS", 0.5)
    before = _threads()
    engine = load_engine(model_path)
    try:
        first = text(list(engine.submit(CompletionJob("Hello", sampling=GREEDY, max_tokens=4))))
        assert _threads() > before  # the engine thread and llama.cpp's workers
        assert _wait_for_threads(before) == before  # all gone once idle
        again = text(list(engine.submit(CompletionJob("Hello", sampling=GREEDY, max_tokens=4))))
        assert again == first  # a new thread serves the same engine
        assert _wait_for_threads(before) == before
        vectors = engine.embed(["Hello"], truncate=True)  # tasks start a thread too
        assert len(vectors.vectors) == 1
    finally:
        assert _wait_for_threads(before) == before
        engine.close()  # no thread left: one starts to shut the engine down
    assert _wait_for_threads(before) == before

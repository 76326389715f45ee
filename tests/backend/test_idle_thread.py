"""With two engines loaded, an idle one hands its thread back (and with it llama.cpp's
OpenMP team, which would otherwise slow the other's decoding) and starts a new one for its
next job; a lone engine keeps its thread; closing an engine without a thread frees it; a
load leaves no thread of its caller's behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from power_backend_llamacpp import engine as engine_module
from power_backend_llamacpp.engine import LlamaCppEngine
from power_core.engine import CompletionJob

from .conftest import GREEDY, load_engine, text


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _settle(seconds: float = 2.0) -> int:
    """The thread count once it has stopped changing for ``seconds``."""
    count, since = _threads(), time.monotonic()
    deadline = since + 60
    while time.monotonic() - since < seconds and time.monotonic() < deadline:
        time.sleep(0.05)
        now = _threads()
        if now != count:
            count, since = now, time.monotonic()
    return count


def _hello(engine: LlamaCppEngine) -> str:
    return text(list(engine.submit(CompletionJob("Hello", sampling=GREEDY, max_tokens=4))))


def test_an_idle_engine_ends_its_thread_while_another_runs(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "IDLE_THREAD_SECONDS", 0.3)
    before = _settle()
    first = load_engine(model_path)
    try:
        answer = _hello(first)
        alone = _settle()
        assert alone > before  # a lone engine keeps its thread (and llama.cpp's workers)
        second = load_engine(model_path)
        try:
            assert _hello(second) == answer
            # each waits for the other to leave first; one of them does, the other stays
            assert _settle() == alone
            assert _hello(first) == answer  # a new thread serves an engine that left
            assert _settle() == alone
            vectors = second.embed(["Hello"], truncate=True)  # tasks start a thread too
            assert len(vectors.vectors) == 1
            assert _settle() == alone
        finally:
            second.close()  # with or without its thread, it shuts down
        assert _hello(first) == answer  # alone again: its thread comes back, and stays
        assert _settle() == alone
    finally:
        first.close()
    assert _settle() == before


def test_loading_leaves_no_thread_of_the_caller_behind(model_path: Path) -> None:
    # Putting weights in AMX buffers starts an OpenMP team on the loading thread; kept alive
    # by the caller's thread, it made libgomp's barriers sleep in every decode step of the
    # engine's thread (7 times slower). The load runs on a thread that ends, so it adds only
    # the engine's own thread. A fresh process: this one's main thread has teams already.
    # (Where the weights go to no AMX buffers, no team starts at load and this holds anyway.)
    script = f"""
import os, sys, time
sys.path.insert(0, {str(Path(__file__).parents[1])!r})
from pathlib import Path
from backend.conftest import load_engine
count = lambda: len(os.listdir("/proc/self/task"))
before = count()
engine = load_engine(Path({str(model_path)!r}))
now, since, deadline = count(), time.monotonic(), time.monotonic() + 60
while time.monotonic() - since < 1.0 and time.monotonic() < deadline:  # threads settle
    time.sleep(0.05)
    if count() != now:
        now, since = count(), time.monotonic()
print(now - before)
engine.close()
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "1"

"""Under the server's gevent monkey-patching the engine never blocks the event loop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.model

SCRIPT = r"""
import gevent.monkey
gevent.monkey.patch_all()

import json, sys
from pathlib import Path

import gevent

from power_backend_llamacpp import LlamaCppBackend
from power_core.concurrency import run_on_native_thread
from power_core.engine import CompletionJob, LoadSpec
from power_core.types import LoadOptions, SamplingOptions, TextDelta

spec = LoadSpec("m", Path(sys.argv[1]), "sha256:" + "0" * 64, "gguf",
                LoadOptions(num_ctx=512, num_parallel=2, num_thread=2))
# the scheduler loads on a helper OS thread, and closes from a greenlet
engine = run_on_native_thread(lambda: LlamaCppBackend().load(spec), "load")
log = []
running = True

def ticker():
    while running:
        log.append("tick")
        gevent.sleep(0.001)

def generate(i):
    job = CompletionJob("Once upon a time", max_tokens=12,
                        sampling=SamplingOptions(temperature=0.0, repeat_penalty=1.0))
    for event in engine.submit(job):
        if isinstance(event, TextDelta):
            log.append(f"delta{i}")
    log.append(f"done{i}")

def embed():
    log.append("embed-start")
    result = engine.embed(["some text to embed " * 10] * 4, truncate=True)
    log.append(f"embed-done-{len(result.vectors)}")

def tokenize():
    log.append("tokenize-start")
    tokens = engine.tokenize("a prompt of megabytes " * 100_000)  # 2.2 MB
    log.append(f"tokenize-done-{len(tokens)}")

tick = gevent.spawn(ticker)
gevent.joinall([gevent.spawn(generate, 0), gevent.spawn(generate, 1)])
gevent.spawn(embed).join()
gevent.spawn(tokenize).join()
closer = gevent.spawn(engine.close)
closer.join()
log.append("closed")
running = False
tick.join()
print(json.dumps(log))
"""


def test_generating_embedding_and_long_tokenizing_yield_to_greenlets(model_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(model_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    log = json.loads(result.stdout.strip().splitlines()[-1])
    assert "done0" in log and "done1" in log and "embed-done-4" in log and "closed" in log
    first_delta = min(log.index("delta0"), log.index("delta1"))
    last_done = max(log.index("done0"), log.index("done1"))
    # the ticker greenlet kept running while both streams were being generated...
    assert "tick" in log[first_delta:last_done]
    # ...and while the embedding ran on the engine thread
    start, end = log.index("embed-start"), log.index("embed-done-4")
    assert "tick" in log[start:end]
    # ...and while a text of megabytes was tokenized (on another OS thread)
    start = log.index("tokenize-start")
    end = next(i for i, entry in enumerate(log) if entry.startswith("tokenize-done-"))
    assert int(log[end].rsplit("-", 1)[1]) > 300_000
    assert "tick" in log[start:end]
    # both jobs were generated at once: each produced text before the other finished
    assert log.index("delta0") < log.index("done1")
    assert log.index("delta1") < log.index("done0")

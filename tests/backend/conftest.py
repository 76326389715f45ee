"""A real llama.cpp engine on the SmolLM2 test model, loaded once per test module."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from power_backend_llamacpp import LlamaCppBackend, LlamaCppEngine
from power_core.engine import CompletionJob, LoadSpec
from power_core.types import EngineEvent, GenerationDone, LoadOptions, SamplingOptions, TextDelta

#: pure greedy decoding: no repetition penalty, nothing random
GREEDY = SamplingOptions(temperature=0.0, repeat_penalty=1.0)
#: decoding threads for both this engine and the llama-cpp-python reference
THREADS = 2


def chat(user: str) -> str:
    """A single-turn ChatML prompt, as SmolLM2-Instruct's template renders it."""
    return f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


def load_engine(model_path: Path, **options: int | bool) -> LlamaCppEngine:
    settings = {"num_ctx": 1024, "num_batch": 256, "num_parallel": 4, "num_thread": THREADS}
    settings.update(options)
    spec = LoadSpec(
        name="smollm2:135m",
        path=model_path,
        digest="sha256:" + "0" * 64,
        format="gguf",
        options=LoadOptions(**settings),  # type: ignore[arg-type]
    )
    engine = LlamaCppBackend().load(spec)
    assert isinstance(engine, LlamaCppEngine)
    return engine


@pytest.fixture(scope="module")
def engine(model_path: Path) -> Iterator[LlamaCppEngine]:
    engine = load_engine(model_path)
    yield engine
    engine.close()


def run(engine: LlamaCppEngine, prompt: str | list[int], **job: object) -> list[EngineEvent]:
    """Submit one job and collect all its events."""
    job.setdefault("sampling", GREEDY)
    return list(engine.submit(CompletionJob(prompt, **job)))  # type: ignore[arg-type]


def text(events: list[EngineEvent], choice: int = 0) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta) and e.choice == choice)


def done(events: list[EngineEvent]) -> GenerationDone:
    last = events[-1]
    assert isinstance(last, GenerationDone)
    return last


@contextlib.contextmanager
def a_running_stream(engine: LlamaCppEngine, max_tokens: int) -> Iterator[list[str]]:
    """A greedy story of ``max_tokens`` streaming (SmolLM2's end-of-text, ``<|im_start|>``
    and ``<|im_end|>`` never come, so it writes them all) from its first token on: yields
    its pieces so far, a list that grows; cancelled on leaving."""
    no_end = SamplingOptions(temperature=0.0, logit_bias={0: -100.0, 1: -100.0, 2: -100.0})
    stream = engine.submit(
        CompletionJob(chat("Tell me a story."), sampling=no_end, max_tokens=max_tokens)
    )
    pieces: list[str] = []

    def read() -> None:
        for event in stream:
            if isinstance(event, TextDelta):
                pieces.append(event.text)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        while not pieces:
            threading.Event().wait(0.01)
        yield pieces
    finally:
        stream.cancel()
        reader.join()

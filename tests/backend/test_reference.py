"""Output matches llama-cpp-python's own ``Llama`` and does not depend on the batch around it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp
import llama_cpp.llama_cpp as llama_cpp_lib
import pytest

from power_backend_llamacpp import LlamaCppEngine
from power_backend_llamacpp.extra_buffers import use_extra_buffers
from power_core.engine import CompletionJob
from power_core.types import PromptProgress, SamplingOptions

from .conftest import GREEDY, THREADS, chat, done, load_engine, run, text

pytestmark = pytest.mark.model

PROMPTS = [
    chat("Write a haiku about the sea."),
    "The quick brown fox",
    "def fibonacci(n):",
    chat("List three colors."),
]
MAX_TOKENS = 40


@pytest.fixture(scope="module")
def reference(model_path: Path) -> Iterator[Any]:
    """``llama_cpp.Llama`` on the same file, threads and kernels (flash attention off, as
    the backend loads by default; extra weight buffers as the backend sets them)."""
    default_params = llama_cpp_lib.llama_model_default_params

    def model_params() -> Any:
        params = default_params()
        params.use_extra_bufts = use_extra_buffers()
        return params

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(llama_cpp_lib, "llama_model_default_params", model_params)
        llm = llama_cpp.Llama(
            str(model_path),
            n_ctx=1024,
            n_threads=THREADS,
            n_threads_batch=THREADS,
            flash_attn=False,
            seed=0,
            verbose=False,
        )
    yield llm
    llm.close()


def test_greedy_matches_llama_cpp_python(engine: LlamaCppEngine, reference: Any) -> None:
    for prompt in PROMPTS:
        expected = reference.create_completion(
            prompt, temperature=0.0, top_k=1, repeat_penalty=1.0, max_tokens=MAX_TOKENS
        )["choices"][0]["text"]
        events = run(engine, prompt, max_tokens=MAX_TOKENS)
        assert text(events) == expected, prompt


def test_concurrent_greedy_jobs_match_one_at_a_time(model_path: Path) -> None:
    """Both on fresh engines, every prompt decoded whole: a prompt continued from the cache
    decodes its last token in a batch of one, whose logits llama.cpp does not promise to be
    bit for bit those of the whole prompt's batch (llama-server says the same of its
    ``cache_prompt``), so a near tie may then go the other way."""
    options = {"num_parallel": len(PROMPTS)}
    one_at_a_time = load_engine(model_path, **options)
    try:
        # each prompt takes an empty sequence: the others share less than half with it
        runs = [run(one_at_a_time, p, max_tokens=MAX_TOKENS) for p in PROMPTS]
        assert all(done(events).usage.cached_tokens == 0 for events in runs)
        alone = [text(events) for events in runs]
    finally:
        one_at_a_time.close()
    concurrent = load_engine(model_path, **options)
    try:
        streams = [
            concurrent.submit(CompletionJob(p, sampling=GREEDY, max_tokens=MAX_TOKENS))
            for p in PROMPTS
        ]
        together = [list(s) for s in streams]
        assert all(done(events).usage.cached_tokens == 0 for events in together)
        assert [text(events) for events in together] == alone
        assert concurrent.active_jobs() == 0
    finally:
        concurrent.close()


def test_prompts_longer_than_a_batch_match_one_chunk(model_path: Path) -> None:
    """A prompt decoded in several chunks, interleaved with other sequences, gives the same
    text as one decoded whole."""
    prompt = chat("Summarise: " + "The sea is calm and blue. " * 30)
    whole = load_engine(model_path, num_batch=512, num_parallel=1)
    try:
        expected = text(run(whole, prompt, max_tokens=24))
    finally:
        whole.close()
    chunked = load_engine(model_path, num_batch=32, num_parallel=2)
    try:
        other = chunked.submit(CompletionJob(PROMPTS[1], sampling=GREEDY, max_tokens=60))
        events = run(chunked, prompt, max_tokens=24)
        progress = [e for e in events if isinstance(e, PromptProgress)]
        assert len(progress) > 1
        assert text(events) == expected
        list(other)
    finally:
        chunked.close()


def test_seed_reproduces_text_alone_and_with_concurrent_jobs(engine: LlamaCppEngine) -> None:
    sampling = SamplingOptions(temperature=0.9, top_k=40, top_p=0.95, seed=42)
    prompt = chat("Tell me a short story about a dragon.")
    alone = text(run(engine, prompt, sampling=sampling, max_tokens=32))
    assert alone == text(run(engine, prompt, sampling=sampling, max_tokens=32))
    noise = [
        engine.submit(CompletionJob(p, sampling=SamplingOptions(temperature=1.0), max_tokens=40))
        for p in PROMPTS[:3]
    ]
    crowded = text(run(engine, prompt, sampling=sampling, max_tokens=32))
    for stream in noise:
        list(stream)
    assert crowded == alone
    other_seed = SamplingOptions(temperature=0.9, top_k=40, top_p=0.95, seed=43)
    assert text(run(engine, prompt, sampling=other_seed, max_tokens=32)) != alone


def test_usage_counts_and_timings(engine: LlamaCppEngine) -> None:
    prompt = chat("What is the capital of France?")
    events = run(engine, prompt, max_tokens=16, return_context=True)
    usage = done(events).usage
    prompt_tokens = engine.tokenize(prompt, add_bos=True)
    assert usage.prompt_tokens == len(prompt_tokens)
    assert usage.context is not None and usage.context[: len(prompt_tokens)] == prompt_tokens
    generated = usage.context[len(prompt_tokens) :]
    assert len(generated) == usage.completion_tokens
    assert engine.detokenize(generated) == text(events)
    assert usage.prompt_eval_ns > 0 and usage.eval_ns > 0
    assert usage.total_ns >= usage.prompt_eval_ns + usage.eval_ns

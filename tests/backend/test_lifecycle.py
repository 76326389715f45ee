"""Cancellation, back-pressure, context limits, loading and unloading, plugin registration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gguf_edits import edited_copy
from power_backend_llamacpp import LlamaCppBackend, LlamaCppEngine
from power_backend_llamacpp.slots import REREAD_TOKENS
from power_core.engine import CompletionJob, EventStream, LoadSpec
from power_core.errors import (
    BackendUnavailable,
    ContextLengthExceeded,
    InvalidModelFile,
    InvalidRequest,
    ModelLoadFailed,
    ServerBusy,
)
from power_core.types import (
    ChoiceDone,
    EngineEvent,
    LoadOptions,
    PromptProgress,
    SamplingOptions,
    TextDelta,
)

from .conftest import GREEDY, chat, done, load_engine, run, text

#: SmolLM2's end-of-generation tokens (<|endoftext|>, <|im_end|>), banned so a job runs on
NO_END = SamplingOptions(temperature=0.0, repeat_penalty=1.0, logit_bias={0: -100.0, 2: -100.0})


def drain(stream: EventStream) -> list[EngineEvent]:
    return list(stream)


@pytest.mark.model
def test_cancel_during_generation_frees_the_sequence(engine: LlamaCppEngine) -> None:
    stream = engine.submit(CompletionJob(chat("Count to one thousand."), sampling=NO_END))
    events: list[EngineEvent] = []
    for event in stream:
        events.append(event)
        if sum(isinstance(e, TextDelta) for e in events) == 3:
            stream.cancel()
    final = done(events)
    assert final.reason == "cancelled"
    assert [e.reason for e in events if isinstance(e, ChoiceDone)] == ["cancelled"]
    assert engine.active_jobs() == 0
    # every sequence is free again: a full set of parallel jobs runs to the end
    streams = [
        engine.submit(CompletionJob(chat("Hi"), sampling=GREEDY, max_tokens=4)) for _ in range(4)
    ]
    assert all(done(drain(s)).reason in ("stop", "length") for s in streams)
    assert engine.active_jobs() == 0


@pytest.mark.model
def test_cancel_during_prompt_processing(model_path: Path) -> None:
    engine = load_engine(model_path, num_batch=16, num_parallel=1)
    try:
        prompt = chat("Summarise this: " + "the river flows to the sea and " * 40)
        stream = engine.submit(CompletionJob(prompt, sampling=GREEDY, max_tokens=8))
        events: list[EngineEvent] = []
        for event in stream:
            events.append(event)
            if isinstance(event, PromptProgress):
                stream.cancel()
        progress = [e for e in events if isinstance(e, PromptProgress)]
        assert progress[-1].processed < progress[-1].total
        assert not any(isinstance(e, TextDelta) for e in events)
        assert done(events).reason == "cancelled"
        assert engine.active_jobs() == 0
        # its KV cells were freed: the only sequence serves a new job normally
        assert text(run(engine, "The capital of France is", max_tokens=4)) != ""
    finally:
        engine.close()


@pytest.mark.model
def test_cancelling_a_queued_job(model_path: Path) -> None:
    engine = load_engine(model_path, num_parallel=1, max_queue=4)
    try:
        running = engine.submit(CompletionJob(chat("Count to a thousand."), sampling=NO_END))
        queued = engine.submit(CompletionJob(chat("Hi"), sampling=GREEDY, max_tokens=4))
        queued.cancel()
        events = drain(queued)
        assert done(events).reason == "cancelled"
        assert not any(isinstance(e, TextDelta) for e in events)
        running.cancel()
        drain(running)
        assert engine.active_jobs() == 0
    finally:
        engine.close()


@pytest.mark.model
def test_full_queue_raises_server_busy(model_path: Path) -> None:
    engine = load_engine(model_path, num_parallel=1, max_queue=1)
    try:
        # runs until cancelled (no end token, context of 1024)
        first = engine.submit(CompletionJob(chat("Count to a thousand."), sampling=NO_END))
        second = engine.submit(CompletionJob(chat("Hi"), sampling=GREEDY, max_tokens=4))
        with pytest.raises(ServerBusy) as busy:
            engine.submit(CompletionJob(chat("Hi"), sampling=GREEDY, max_tokens=4))
        assert busy.value.http_status == 503
        assert engine.active_jobs() == 2
        first.cancel()
        drain(first)
        assert done(drain(second)).reason in ("stop", "length")
        assert engine.active_jobs() == 0
    finally:
        engine.close()


@pytest.mark.model
def test_generation_stops_when_the_context_is_full(model_path: Path) -> None:
    engine = load_engine(model_path, num_ctx=64, num_parallel=2)
    try:
        prompt = engine.tokenize(chat("Count to a thousand."), add_bos=True)
        events = run(engine, prompt, sampling=NO_END)
        assert done(events).reason == "length"
        # prompt and output together fill the context exactly
        assert done(events).usage.completion_tokens == 64 - len(prompt)
    finally:
        engine.close()


@pytest.mark.model
@pytest.mark.parametrize(
    "cache",
    [{}, {"flash_attention": True, "kv_cache_type": "q8_0"}],
    ids=["f16", "q8_0 with flash attention"],
)
def test_a_context_that_shifts_goes_on_past_its_end(
    model_path: Path, cache: dict[str, bool | str]
) -> None:
    # a quantized cache shifts too: llama.cpp dequantizes the keys to rotate them
    engine = load_engine(model_path, num_ctx=64, num_parallel=2, **cache)  # type: ignore[arg-type]
    try:
        prompt = engine.tokenize(chat("Count to a thousand."), add_bos=True)
        events = run(
            engine, prompt, sampling=NO_END, max_tokens=150, shift_keep=4, return_context=True
        )
        assert done(events).reason == "length"
        assert done(events).usage.completion_tokens == 150  # past the 64-token context
        # the shifted cells are never taken for a cache of the tokens they held before
        output = done(events).usage.context
        assert output is not None
        again = run(engine, output[:60], sampling=NO_END, max_tokens=1)
        assert done(again).usage.cached_tokens == 0
        cached = done(run(engine, output[:60], max_tokens=1)).usage.cached_tokens
        assert cached == 60 - REREAD_TOKENS
        # without max_tokens, ten contexts' worth (Ollama's cap for num_predict -1)
        unlimited = run(engine, prompt, sampling=NO_END, shift_keep=len(prompt))
        assert done(unlimited).usage.completion_tokens == 640
    finally:
        engine.close()


@pytest.mark.model
def test_prompt_longer_than_the_context(engine: LlamaCppEngine) -> None:
    too_long = "word " * 2000
    with pytest.raises(ContextLengthExceeded) as error:
        engine.submit(CompletionJob(too_long, sampling=GREEDY))
    assert error.value.http_status == 400
    exactly_full = engine.tokenize(" hello") * engine.info.context_length
    with pytest.raises(ContextLengthExceeded):
        engine.submit(CompletionJob(exactly_full[: engine.info.context_length], sampling=GREEDY))
    assert engine.active_jobs() == 0


@pytest.mark.model
def test_bad_prompts_are_invalid_requests(engine: LlamaCppEngine) -> None:
    with pytest.raises(InvalidRequest):
        engine.submit(CompletionJob([1, 2, -5], sampling=GREEDY))
    with pytest.raises(InvalidRequest):
        engine.submit(CompletionJob([engine.info.vocab_size], sampling=GREEDY))
    with pytest.raises(InvalidRequest):
        engine.submit(CompletionJob("hi", sampling=GREEDY, logprobs=-1))
    # an empty prompt starts from the BOS token
    assert done(run(engine, "", max_tokens=3)).usage.prompt_tokens == 1


@pytest.mark.model
def test_info_and_tokens(engine: LlamaCppEngine) -> None:
    info = engine.info
    assert (info.context_length, info.embedding_length, info.vocab_size) == (1024, 576, 49152)
    assert info.size_bytes > 90_000_000
    tokens = engine.tokenize("<|im_start|>user")
    assert tokens[0] == 1  # the special token is parsed, not spelled out
    assert engine.detokenize(tokens) == "<|im_start|>user"
    assert engine.tokenize("Hello", add_bos=True) == engine.tokenize("Hello")  # no BOS in SmolLM2


@pytest.mark.model
def test_close_ends_running_jobs_and_refuses_new_ones(model_path: Path) -> None:
    engine = load_engine(model_path, num_parallel=1)
    stream = engine.submit(CompletionJob(chat("Count to a thousand."), sampling=NO_END))
    for event in stream:
        if isinstance(event, TextDelta):
            break
    engine.close()
    engine.close()  # idempotent
    with pytest.raises(BackendUnavailable):
        engine.submit(CompletionJob("hi", sampling=GREEDY))
    with pytest.raises(BackendUnavailable):
        engine.embed(["hi"], truncate=True)
    assert engine.active_jobs() == 0


@pytest.mark.model
def test_load_failures(tmp_path: Path, model_path: Path) -> None:
    backend = LlamaCppBackend()

    def spec(path: Path, **options: int) -> LoadSpec:
        return LoadSpec("m", path, "sha256:" + "0" * 64, "gguf", LoadOptions(**options))  # type: ignore[arg-type]

    with pytest.raises(ModelLoadFailed, match="not found"):
        backend.load(spec(tmp_path / "missing.gguf"))
    # a file at fault is the model's fault, a 400 saying what is wrong (never its path)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 512)
    with pytest.raises(InvalidModelFile, match=r"cannot load 'm': junk\.gguf: absurd metadata"):
        backend.load(spec(junk))
    headless = edited_copy(model_path, tmp_path / "headless.gguf", "llama.attention.head_count", 0)
    with pytest.raises(InvalidModelFile) as refused:
        backend.load(spec(headless))
    assert refused.value.message.startswith("llama.cpp cannot load 'm': check_tensor_dims: ")
    assert (
        "blk.0.attn_q.weight" in refused.value.message
        and str(tmp_path) not in refused.value.message
    )
    with pytest.raises(InvalidRequest):
        backend.load(spec(junk, num_ctx=0))
    with pytest.raises(InvalidRequest):
        backend.load(spec(junk, num_parallel=100_000))


def test_backend_identity() -> None:
    backend = LlamaCppBackend()
    assert backend.name == "llamacpp"
    assert backend.supports("gguf") and backend.supports("GGUF")
    assert not backend.supports("safetensors")


def test_plugin_is_registered_through_the_entry_point() -> None:
    from importlib.metadata import entry_points

    import pluggy

    from power_core.hookspecs import PROJECT_NAME

    (entry,) = [e for e in entry_points(group=PROJECT_NAME) if e.name == "llamacpp"]
    assert entry.value == "power_backend_llamacpp.plugin"
    registered: list[object] = []
    manager = pluggy.PluginManager(PROJECT_NAME)
    from power_core import hookspecs

    manager.add_hookspecs(hookspecs)
    manager.register(entry.load())
    manager.hook.register_backends(register=registered.append)
    assert [type(b) for b in registered] == [LlamaCppBackend]


def test_importing_the_plugin_does_not_import_llama_cpp() -> None:
    code = (
        "import sys, power_backend_llamacpp.plugin;"
        "print(sorted(m for m in ('llama_cpp', 'numpy', 'flask') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


CLOSE_WHILE_TOKENIZING = r"""
import sys, threading, time
from pathlib import Path
from power_backend_llamacpp import LlamaCppBackend
from power_core.engine import LoadSpec
from power_core.errors import BackendUnavailable
from power_core.types import LoadOptions

spec = LoadSpec("m", Path(sys.argv[1]), "sha256:" + "0" * 64, "gguf",
                LoadOptions(num_ctx=512, num_parallel=1, num_thread=2))
engine = LlamaCppBackend().load(spec)
outcome = []

def tokenize():
    try:
        outcome.append(len(engine.tokenize("hello world, a long prompt. " * 600_000)))
    except BackendUnavailable as exc:
        outcome.append(exc.message)

reader = threading.Thread(target=tokenize)
reader.start()
time.sleep(0.5)
engine.close()
reader.join()
print(outcome[0])
"""


@pytest.mark.model
def test_closing_while_a_long_prompt_is_tokenized_waits_for_it(model_path: Path) -> None:
    """A 16 MB prompt is tokenized on a thread of its own for seconds; the model must not
    be freed under it (at a shutdown this read freed memory: a crash, or 0 tokens)."""
    result = subprocess.run(
        [sys.executable, "-c", CLOSE_WHILE_TOKENIZING, str(model_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    counted = result.stdout.strip().splitlines()[-1]
    assert counted == "4200001" or "unloaded" in counted

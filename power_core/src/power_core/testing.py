"""A conformance suite for inference backends: subclass :class:`BackendConformance`.

It checks, through the public :class:`~power_core.engine.Backend` and
:class:`~power_core.engine.Engine` doors only, the behaviour the core and every API surface
rely on: event order, finish reasons, usage, stop strings, seeds, concurrency, cancellation,
back-pressure and errors. A backend plugin's test module provides two fixtures::

    import pytest
    from power_core.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        @pytest.fixture(scope="class")
        @classmethod
        def backend(cls):
            return MyBackend()

        @pytest.fixture(scope="class")
        @classmethod
        def model_path(cls):
            return Path("/models/small-instruct.gguf")

``model_format`` (default ``"gguf"``) and ``load_options`` can be overridden too. The model
should be a small instruction-tuned one that answers short questions in a few tokens. A closed
engine must refuse work with :class:`~power_core.errors.BackendUnavailable`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from power_core.engine import Backend, CompletionJob, Engine, EventStream, LoadSpec
from power_core.errors import (
    BackendUnavailable,
    ContextLengthExceeded,
    InvalidModelFile,
    ModelLoadFailed,
    ServerBusy,
    UnsupportedFeature,
)
from power_core.types import (
    ChoiceDone,
    EngineEvent,
    GenerationDone,
    LoadOptions,
    PromptProgress,
    SamplingOptions,
    TextDelta,
)

GREEDY = SamplingOptions(temperature=0.0, repeat_penalty=1.0)
QUESTION = "Question: What is the capital of France?\nAnswer:"
STORY = "Once upon a time, in a small village by the sea, there lived"


def collect(stream: EventStream) -> list[EngineEvent]:
    """Every event of ``stream``, in order."""
    return list(stream)


def text_of(events: list[EngineEvent], choice: int = 0) -> str:
    """The visible text of one choice."""
    return "".join(e.text for e in events if isinstance(e, TextDelta) and e.choice == choice)


class BackendConformance:
    """Behaviour every backend must show; subclass it and provide ``backend``/``model_path``."""

    #: the format the test model is in
    model_format = "gguf"

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> Backend:
        raise NotImplementedError("a conformance subclass must provide a `backend` fixture")

    @pytest.fixture(scope="class")
    @classmethod
    def load_options(cls) -> LoadOptions:
        return LoadOptions(num_ctx=512, num_batch=128, num_parallel=3, max_queue=8)

    @classmethod
    def load(cls, backend: Backend, model_path: Path, options: LoadOptions) -> Engine:
        """Load the test model with ``options`` through the backend's public door."""
        return backend.load(
            LoadSpec(
                name="conformance",
                path=model_path,
                digest="sha256:" + "0" * 64,
                format=cls.model_format,
                options=options,
            )
        )

    @pytest.fixture(scope="class")
    @classmethod
    def engine(
        cls, backend: Backend, model_path: Path, load_options: LoadOptions
    ) -> Iterator[Engine]:
        engine = cls.load(backend, model_path, load_options)
        yield engine
        engine.close()

    # --------------------------------------------------------------------- protocol shape
    def test_backend_protocol(self, backend: Backend) -> None:
        assert isinstance(backend, Backend)
        assert isinstance(backend.name, str) and backend.name
        assert backend.supports(self.model_format)
        assert not backend.supports("no-such-format")

    def test_engine_info(self, engine: Engine, load_options: LoadOptions) -> None:
        assert isinstance(engine, Engine)
        info = engine.info
        assert info.context_length == load_options.num_ctx
        assert info.embedding_length > 0 and info.vocab_size > 0 and info.size_bytes > 0

    def test_tokenize_round_trip(self, engine: Engine) -> None:
        tokens = engine.tokenize("Hello world, how are you?")
        assert tokens and all(isinstance(t, int) for t in tokens)
        assert engine.detokenize(tokens) == "Hello world, how are you?"

    # --------------------------------------------------------------------- event stream
    def test_stream_shape_and_usage(self, engine: Engine) -> None:
        events = collect(engine.submit(CompletionJob(QUESTION, sampling=GREEDY, max_tokens=8)))
        assert isinstance(events[-1], GenerationDone)
        assert sum(isinstance(e, GenerationDone) for e in events) == 1
        assert any(isinstance(e, PromptProgress) for e in events)
        done = [e for e in events if isinstance(e, ChoiceDone)]
        assert [d.choice for d in done] == [0]
        final = events[-1]
        assert isinstance(final, GenerationDone)
        assert final.reason == done[0].reason in ("stop", "length")
        usage = final.usage
        assert usage.prompt_tokens == len(engine.tokenize(QUESTION, add_bos=True))
        assert usage.completion_tokens == done[0].completion_tokens <= 8
        assert usage.total_ns >= usage.prompt_eval_ns >= 0 and usage.eval_ns >= 0
        if done[0].reason == "length":
            assert done[0].completion_tokens == 8
        assert engine.active_jobs() == 0

    def test_greedy_is_deterministic(self, engine: Engine) -> None:
        first = text_of(
            collect(engine.submit(CompletionJob(STORY, sampling=GREEDY, max_tokens=16)))
        )
        again = text_of(
            collect(engine.submit(CompletionJob(STORY, sampling=GREEDY, max_tokens=16)))
        )
        assert first and first == again

    def test_concurrent_jobs_match_sequential(self, engine: Engine) -> None:
        prompts = [QUESTION, STORY, "The three primary colors are"]
        alone = [
            text_of(collect(engine.submit(CompletionJob(p, sampling=GREEDY, max_tokens=12))))
            for p in prompts
        ]
        streams = [engine.submit(CompletionJob(p, sampling=GREEDY, max_tokens=12)) for p in prompts]
        together = [text_of(collect(s)) for s in streams]
        assert together == alone

    def test_seed_reproducible(self, engine: Engine) -> None:
        sampling = SamplingOptions(temperature=1.0, top_k=0, top_p=1.0, seed=1234)
        job = CompletionJob(STORY, sampling=sampling, max_tokens=16)
        first = text_of(collect(engine.submit(job)))
        assert first == text_of(collect(engine.submit(job)))

    def test_stop_string_is_never_emitted(self, engine: Engine) -> None:
        full = text_of(collect(engine.submit(CompletionJob(STORY, sampling=GREEDY, max_tokens=24))))
        assert len(full) > 12
        stop = full[6:10]
        job = CompletionJob(STORY, sampling=GREEDY, max_tokens=24, stop=["\x00never", stop])
        events = collect(engine.submit(job))
        assert text_of(events) == full[: full.index(stop)]
        final = events[-1]
        assert isinstance(final, GenerationDone) and final.reason == "stop"

    def test_n_choices(self, engine: Engine) -> None:
        sampling = SamplingOptions(temperature=1.0, seed=7)
        events = collect(engine.submit(CompletionJob(STORY, sampling=sampling, max_tokens=6, n=2)))
        done = sorted(e.choice for e in events if isinstance(e, ChoiceDone))
        assert done == [0, 1]
        assert {e.choice for e in events if isinstance(e, TextDelta)} <= {0, 1}
        final = events[-1]
        assert isinstance(final, GenerationDone)
        assert final.usage.completion_tokens == sum(
            e.completion_tokens for e in events if isinstance(e, ChoiceDone)
        )

    def test_logprobs(self, engine: Engine) -> None:
        events = collect(
            engine.submit(CompletionJob(QUESTION, sampling=GREEDY, max_tokens=5, logprobs=3))
        )
        entries = [lp for e in events if isinstance(e, TextDelta) for lp in e.logprobs]
        final = events[-1]
        assert isinstance(final, GenerationDone)
        assert len(entries) == final.usage.completion_tokens
        for entry in entries:
            assert entry.logprob <= 0.0 and len(entry.top) == 3
            # greedy picks the most likely token
            assert entry.logprob == pytest.approx(entry.top[0][1], abs=1e-4)

    def test_json_mode_parses(self, engine: Engine) -> None:
        prompt = "A JSON object describing a cat named Tom who is 3 years old:\n"
        job = CompletionJob(prompt, sampling=GREEDY, max_tokens=128, json_mode=True)
        events = collect(engine.submit(job))
        final = events[-1]
        assert isinstance(final, GenerationDone) and final.reason == "stop"
        assert isinstance(json.loads(text_of(events)), dict)

    # --------------------------------------------------------------------- lifecycle
    def test_cancel_frees_the_sequence(self, engine: Engine) -> None:
        stream = engine.submit(CompletionJob(STORY, sampling=GREEDY, max_tokens=400))
        events: list[EngineEvent] = []
        for event in stream:
            events.append(event)
            if isinstance(event, TextDelta):
                stream.cancel()
        final = events[-1]
        assert isinstance(final, GenerationDone) and final.reason == "cancelled"
        assert final.usage.completion_tokens < 400
        assert engine.active_jobs() == 0
        after = collect(engine.submit(CompletionJob(QUESTION, sampling=GREEDY, max_tokens=4)))
        assert isinstance(after[-1], GenerationDone) and after[-1].reason in ("stop", "length")

    def test_prompt_longer_than_context(self, engine: Engine) -> None:
        one = engine.tokenize(" hello")
        prompt = one * (engine.info.context_length // len(one) + 1)
        with pytest.raises(ContextLengthExceeded):
            engine.submit(CompletionJob(prompt, sampling=GREEDY, max_tokens=4))
        assert engine.active_jobs() == 0

    def test_suffix_needs_fim(self, engine: Engine) -> None:
        job = CompletionJob("def add(a, b):\n    ", suffix="\n", sampling=GREEDY, max_tokens=4)
        if engine.info.supports_fim:
            assert isinstance(collect(engine.submit(job))[-1], GenerationDone)
        else:
            with pytest.raises(UnsupportedFeature):
                engine.submit(job)

    def test_embeddings_are_unit_vectors(self, engine: Engine) -> None:
        result = engine.embed(["The cat sat on the mat.", "Stock prices fell."], truncate=True)
        assert len(result.vectors) == 2
        for vector in result.vectors:
            assert len(vector) == engine.info.embedding_length
            assert sum(v * v for v in vector) == pytest.approx(1.0, abs=1e-4)
        assert result.prompt_tokens > 0

    def test_full_queue_is_server_busy(
        self, backend: Backend, model_path: Path, load_options: LoadOptions
    ) -> None:
        options = LoadOptions(num_ctx=load_options.num_ctx, num_parallel=1, max_queue=1)
        engine = self.load(backend, model_path, options)
        accepted: list[EventStream] = []
        try:
            with pytest.raises(ServerBusy):
                for _ in range(8):
                    job = CompletionJob(STORY, sampling=GREEDY, max_tokens=200)
                    accepted.append(engine.submit(job))
            assert len(accepted) >= 2
        finally:
            for stream in accepted:
                stream.cancel()
                collect(stream)
            assert engine.active_jobs() == 0
            engine.close()

    def test_closed_engine_refuses_work(
        self, backend: Backend, model_path: Path, load_options: LoadOptions
    ) -> None:
        engine = self.load(backend, model_path, load_options)
        engine.close()
        with pytest.raises(BackendUnavailable):
            engine.submit(CompletionJob(QUESTION, sampling=GREEDY, max_tokens=2))

    def test_load_failures_are_typed(
        self, backend: Backend, tmp_path: Path, load_options: LoadOptions
    ) -> None:
        with pytest.raises(ModelLoadFailed):
            self.load(backend, tmp_path / "missing.gguf", load_options)
        junk = tmp_path / "junk.gguf"
        junk.write_bytes(b"GGUF" + b"\x00\x01garbage" * 64)
        # the file's fault (a 400), which a backend that cannot tell may report as a
        # failed load (a 500)
        with pytest.raises((InvalidModelFile, ModelLoadFailed)):
            self.load(backend, junk, load_options)

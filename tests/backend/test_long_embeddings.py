"""An embedding input longer than a group: read a chunk at a time by a causal model (each
chunk a task of the engine thread), pooled as llama.cpp pools a whole sequence; read whole
by a model whose attention is not causal."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import gguf
import llama_cpp as lc
import pytest

from power_backend_llamacpp import LlamaCppEngine
from power_backend_llamacpp.embedding_contexts import GROUP_TOKENS
from power_backend_llamacpp.long_inputs import ChunkReader, LongInput
from power_core.concurrency import OneShot
from power_core.errors import Cancelled, InvalidRequest

from ..gguf_edits import copy_with_values
from .conftest import a_running_stream, load_engine

pytestmark = pytest.mark.model

LONG = "The mill by the river turns all day, and the miller sings to the water. " * 50


def cosine(a: list[float], b: list[float]) -> float:
    """Of two unit vectors. Read in other micro-batches, one input's vector differs in its
    last digits (1 - cosine: 1e-5 pooled by the mean, 1.2e-4 by the last token, here); the
    wrong token's, or the mean of the last chunk alone, 0.14 and 0.016."""
    return sum(x * y for x, y in zip(a, b, strict=True))


def llama_cpp_python_vector(model: Path, text: str, pooling: int, num_ctx: int) -> list[float]:
    """``text`` embedded by llama-cpp-python's ``Llama.embed`` (the whole input in one
    micro-batch, pooled by llama.cpp), in a child process."""
    script = (
        "import json, sys; from llama_cpp import Llama; "
        "llm = Llama(sys.argv[1], embedding=True, pooling_type=int(sys.argv[2]), "
        "n_ctx=int(sys.argv[3]), n_batch=int(sys.argv[3]), n_ubatch=int(sys.argv[3]), "
        "n_threads=2, verbose=False); "
        "print(json.dumps(llm.embed(sys.stdin.read(), normalize=True)))"
    )
    child = subprocess.run(
        [sys.executable, "-c", script, str(model), str(pooling), str(num_ctx)],
        input=text,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    vector: list[float] = json.loads(child.stdout)
    return vector


@pytest.fixture(scope="module")
def engine(model_path: Path) -> Iterator[LlamaCppEngine]:
    engine = load_engine(model_path, num_ctx=2048, num_parallel=2)
    yield engine
    engine.close()


def chunk_reader(engine: LlamaCppEngine) -> ChunkReader:
    return engine._embedder._chunks


def idle(reader: ChunkReader) -> bool:
    """No input is read or waits."""
    return reader._reading is None and not reader._waiting


@pytest.mark.parametrize(
    ("pooling", "metadata"),
    [
        (lc.LLAMA_POOLING_TYPE_MEAN, None),  # the model declares none: mean, as Ollama
        (lc.LLAMA_POOLING_TYPE_LAST, lc.LLAMA_POOLING_TYPE_LAST),
        (lc.LLAMA_POOLING_TYPE_CLS, lc.LLAMA_POOLING_TYPE_CLS),
    ],
)
def test_a_long_input_read_in_chunks_is_pooled_as_llama_cpp_pools_it_whole(
    model_path: Path, tmp_path: Path, pooling: int, metadata: int | None
) -> None:
    model = model_path
    if metadata is not None:
        values = {"llama.pooling_type": (metadata, gguf.GGUFValueType.UINT32)}
        model = copy_with_values(model_path, tmp_path / "pooled.gguf", values)
    engine = load_engine(model, num_ctx=2048, num_parallel=1)
    try:
        tokens = len(engine.tokenize(LONG, add_bos=True))
        assert 3 * GROUP_TOKENS < tokens <= 2048
        (vector,) = engine.embed([LONG], truncate=False).vectors
        assert engine._embedder.cells == GROUP_TOKENS  # the pooled context never grew
        reader = chunk_reader(engine)
        assert reader.cells == 1024 and idle(reader)  # read in chunks, its context kept
    finally:
        engine.close()
    whole = llama_cpp_python_vector(model, LONG, pooling, num_ctx=2048)
    assert cosine(vector, whole) == pytest.approx(1.0, abs=1e-3)


def test_a_model_whose_attention_is_not_causal_reads_a_long_input_whole(
    model_path: Path, tmp_path: Path
) -> None:
    values = {"llama.attention.causal": (False, gguf.GGUFValueType.BOOL)}
    model = copy_with_values(model_path, tmp_path / "not-causal.gguf", values)
    engine = load_engine(model, num_ctx=2048, num_parallel=1)
    try:
        (vector,) = engine.embed([LONG], truncate=False).vectors
        assert engine._embedder.cells == 1024  # one decode of the whole input
        assert chunk_reader(engine).contexts_made == 0
    finally:
        engine.close()
    whole = llama_cpp_python_vector(model, LONG, lc.LLAMA_POOLING_TYPE_MEAN, num_ctx=2048)
    assert cosine(vector, whole) == pytest.approx(1.0, abs=1e-3)


def test_a_generation_goes_on_between_the_chunks_of_a_long_input(engine: LlamaCppEngine) -> None:
    with a_running_stream(engine, 1000) as tokens:
        seen: list[int] = []

        def cancelled() -> bool:
            seen.append(len(tokens))
            return False

        engine.embed([LONG + LONG], truncate=True, cancelled=cancelled)
        assert len(seen) >= 7  # asked between the chunks
        assert seen[-1] - seen[0] >= len(seen) // 2  # about a step per chunk, at least


def test_a_long_input_stops_between_chunks_and_gives_its_context_back(
    engine: LlamaCppEngine, model_path: Path
) -> None:
    asked: list[bool] = []

    def cancelled() -> bool:
        asked.append(True)
        return len(asked) == 2

    with pytest.raises(Cancelled):
        engine.embed(["x " + LONG], truncate=False, cancelled=cancelled)
    assert len(asked) == 2
    assert idle(chunk_reader(engine))
    (after,) = engine.embed(["x " + LONG], truncate=False).vectors
    fresh_engine = load_engine(model_path, num_ctx=2048, num_parallel=1)
    try:
        (fresh,) = fresh_engine.embed(["x " + LONG], truncate=False).vectors
    finally:
        fresh_engine.close()
    assert cosine(after, fresh) == pytest.approx(1.0, abs=1e-5)  # nothing of the stopped one


def test_long_inputs_that_come_together_are_read_in_turn_on_one_context(
    engine: LlamaCppEngine,
) -> None:
    texts = [f"Story {n}: {LONG}" for n in range(3)]
    alone = [engine.embed([text], truncate=False).vectors[0] for text in texts]
    reader = chunk_reader(engine)
    made = reader.contexts_made
    started: list[bool] = []
    start = reader.start

    def recording_start(item: LongInput, turn: OneShot[None]) -> bool:
        started.append(start(item, turn))
        return started[-1]

    together: dict[int, list[float]] = {}
    all_at_once = threading.Barrier(len(texts))

    def embed(n: int) -> None:
        all_at_once.wait()
        together[n] = engine.embed([texts[n]], truncate=False).vectors[0]

    reader.start = recording_start  # type: ignore[method-assign]
    try:
        threads = [threading.Thread(target=embed, args=(n,)) for n in range(len(texts))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        del reader.start
    assert started.count(False) >= 1  # one at least waited for its turn
    for n, vector in enumerate(alone):
        assert cosine(vector, together[n]) == pytest.approx(1.0, abs=1e-5)
    assert idle(reader) and reader.contexts_made == made  # the one context served them all


@pytest.mark.parametrize(
    ("pooling", "refusal"),
    [(lc.LLAMA_POOLING_TYPE_NONE, "pooled"), (lc.LLAMA_POOLING_TYPE_RANK, "ranks")],
)
def test_a_model_that_pools_no_vector_is_refused_before_any_decode(
    model_path: Path, tmp_path: Path, pooling: int, refusal: str
) -> None:
    values = {"llama.pooling_type": (pooling, gguf.GGUFValueType.UINT32)}
    model = copy_with_values(model_path, tmp_path / "no-vector.gguf", values)
    engine = load_engine(model, num_ctx=2048, num_parallel=1)
    try:
        for inputs in (["short"], [LONG]):
            with pytest.raises(InvalidRequest, match=refusal):
                engine.embed(inputs, truncate=False)
        assert engine._embedder.cells == 0  # no context kept, none grown
        assert chunk_reader(engine).contexts_made == 0
    finally:
        engine.close()

"""Embeddings: one pooled, unit-length vector per input, batched, truncated on request."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from power_backend_llamacpp import LlamaCppEngine
from power_backend_llamacpp.embedding_contexts import GROUP_TOKENS, grown_cells
from power_core.engine import CompletionJob
from power_core.errors import Cancelled, ContextLengthExceeded, InvalidRequest

from .conftest import GREEDY, a_running_stream, chat, done, load_engine

pytestmark = pytest.mark.model


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_shape_and_unit_norm(engine: LlamaCppEngine) -> None:
    inputs: list[str | list[int]] = ["The cat sat on the mat.", "Quarterly revenue grew by 4%."]
    result = engine.embed(inputs, truncate=True)
    assert len(result.vectors) == 2
    for vector in result.vectors:
        assert len(vector) == engine.info.embedding_length == 576
        assert math.sqrt(sum(v * v for v in vector)) == pytest.approx(1.0, abs=1e-6)
    expected_tokens = sum(len(engine.tokenize(str(t), add_bos=True)) for t in inputs)
    assert result.prompt_tokens == expected_tokens
    assert result.total_ns > 0


def test_paraphrase_is_closer_than_an_unrelated_sentence(engine: LlamaCppEngine) -> None:
    base, paraphrase, unrelated = engine.embed(
        [
            "The weather today is sunny and warm.",
            "It is a warm, sunny day today.",
            "The compiler reported a type error in the parser module.",
        ],
        truncate=True,
    ).vectors
    assert cosine(base, paraphrase) > cosine(base, unrelated)


def test_batched_vectors_equal_single_ones(engine: LlamaCppEngine) -> None:
    texts: list[str | list[int]] = [
        f"Sentence number {i} is about topic {i * 7}." for i in range(20)
    ]
    together = engine.embed(texts, truncate=True).vectors
    for text, vector in zip(texts[:3], together, strict=False):
        (alone,) = engine.embed([text], truncate=True).vectors
        assert cosine(alone, vector) == pytest.approx(1.0, abs=1e-4)


def varied_texts(count: int) -> list[str | list[int]]:
    """Texts of 20 to 150 tokens or so, so that groups of :data:`GROUP_TOKENS` end at
    different places."""
    return [
        f"Paragraph {i}: " + "the river runs past the mill " * (3 + 5 * (i % 5))
        for i in range(count)
    ]


def test_inputs_over_several_groups_equal_each_embedded_alone(engine: LlamaCppEngine) -> None:
    texts = varied_texts(14)
    lengths = [len(engine.tokenize(str(text), add_bos=True)) for text in texts]
    assert sum(lengths) > 2 * GROUP_TOKENS
    result = engine.embed(texts, truncate=True)
    assert result.prompt_tokens == sum(lengths)
    assert len(result.vectors) == len(texts)
    for text, vector in zip(texts, result.vectors, strict=True):
        (alone,) = engine.embed([text], truncate=True).vectors
        assert cosine(alone, vector) == pytest.approx(1.0, abs=1e-4)


def test_cancelled_is_asked_between_groups_and_stops_the_work(engine: LlamaCppEngine) -> None:
    asked: list[int] = []

    def cancelled() -> bool:
        asked.append(len(asked))
        return len(asked) > 2

    with pytest.raises(Cancelled):
        engine.embed(varied_texts(14), truncate=True, cancelled=cancelled)
    assert len(asked) == 3  # two groups embedded, then stopped before the third


def test_an_input_too_long_is_refused_before_any_group_is_embedded(
    engine: LlamaCppEngine,
) -> None:
    asked: list[bool] = []
    too_long = "lorem ipsum dolor sit amet " * 400
    with pytest.raises(ContextLengthExceeded):
        engine.embed(
            [*varied_texts(20), too_long],
            truncate=False,
            cancelled=lambda: asked.append(True) or False,
        )
    assert asked == []


def test_a_generation_goes_on_between_embedding_groups(engine: LlamaCppEngine) -> None:
    """Each group is a task of its own on the engine thread: a running stream takes
    decode steps while a long list of inputs is embedded, instead of waiting for all."""
    with a_running_stream(engine, 1500) as tokens:
        seen: list[int] = []

        def cancelled() -> bool:
            seen.append(len(tokens))
            return False

        engine.embed(varied_texts(60), truncate=True, cancelled=cancelled)
        assert len(seen) > 10
        assert seen[-1] - seen[0] >= len(seen) // 2  # about a step per group, at least


def test_token_inputs(engine: LlamaCppEngine) -> None:
    tokens = engine.tokenize("A bird in the hand.", add_bos=True)
    from_tokens, from_text = engine.embed([tokens, "A bird in the hand."], truncate=True).vectors
    assert cosine(from_tokens, from_text) == pytest.approx(1.0, abs=1e-5)


def test_truncation(engine: LlamaCppEngine) -> None:
    long_text = "lorem ipsum dolor sit amet " * 400
    with pytest.raises(ContextLengthExceeded):
        engine.embed([long_text], truncate=False)
    result = engine.embed([long_text], truncate=True)
    assert result.prompt_tokens == engine.info.context_length
    assert len(result.vectors[0]) == 576


def test_bad_inputs(engine: LlamaCppEngine) -> None:
    with pytest.raises(InvalidRequest):
        engine.embed([], truncate=True)
    with pytest.raises(InvalidRequest):
        engine.embed([[10**9]], truncate=True)


def test_embedding_while_generating(engine: LlamaCppEngine) -> None:
    """Embedding runs on the engine thread between decode steps of running jobs."""
    stream = engine.submit(
        CompletionJob(chat("Tell me about owls."), sampling=GREEDY, max_tokens=24)
    )
    results: list[int] = []
    worker = threading.Thread(
        target=lambda: results.append(len(engine.embed(["owls"], truncate=True).vectors))
    )
    worker.start()
    events = list(stream)
    worker.join()
    assert results == [1]
    assert done(events).reason in ("stop", "length")


def test_an_embedding_context_grows_to_the_inputs_not_to_num_ctx() -> None:
    assert grown_cells(10, 0, 4096) == GROUP_TOKENS  # a first short input: one group's cells
    assert grown_cells(10, 0, 17) == GROUP_TOKENS  # a context shorter than a group
    assert grown_cells(200, 256, 4096) == 256  # what fits is kept
    assert grown_cells(300, 256, 4096) == 512  # a longer one at least doubles it
    assert grown_cells(600, 256, 4096) == 768  # or as much as it needs
    assert grown_cells(100, 768, 4096) == 768  # it does not shrink
    assert grown_cells(3000, 2048, 3000) == 3072  # never beyond num_ctx, padded


def test_the_embedding_context_is_made_for_the_inputs_not_for_num_ctx(model_path: Path) -> None:
    engine = load_engine(model_path, num_ctx=4096, num_parallel=1)
    try:
        engine.embed(["the river runs past the mill"] * 8, truncate=False)
        assert engine._embedder.cells == GROUP_TOKENS
    finally:
        engine.close()


@pytest.mark.parametrize("num_ctx", [17, 1000])
def test_a_context_not_a_multiple_of_the_kv_pad_embeds(model_path: Path, num_ctx: int) -> None:
    # a child process: before the fix, llama.cpp failed an assertion and aborted it
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
        "from backend.conftest import load_engine; "
        "engine = load_engine(Path(sys.argv[2]), num_ctx=int(sys.argv[3])); "
        "result = engine.embed(['one two three', 'four five'], truncate=True); "
        "print(len(result.vectors), len(result.vectors[0])); engine.close()"
    )
    tests_dir = str(Path(__file__).resolve().parents[1])
    child = subprocess.run(
        [sys.executable, "-c", script, tests_dir, str(model_path), str(num_ctx)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split() == ["2", "576"]

"""``kv_cache_type`` (Ollama's OLLAMA_KV_CACHE_TYPE): a quantized KV cache with flash
attention, f16 without it, on the real model."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import llama_cpp as lc
import pytest

from power_backend_llamacpp import LlamaCppEngine
from power_backend_llamacpp.extra_buffers_probe import write_probe_model
from power_core.errors import InvalidRequest

from .conftest import load_engine, run, text

PROMPT = "The capital of France is Paris. The capital of Italy is"


def cached_bytes(engine: LlamaCppEngine) -> int:
    """Bytes llama.cpp serializes for sequence 0's cells (the engine is idle: no job runs)."""
    return int(lc.llama_state_seq_get_size(engine._ctx, 0))


@pytest.fixture
def engines(model_path: Path) -> Iterator[dict[str, LlamaCppEngine]]:
    made: dict[str, LlamaCppEngine] = {}
    try:
        for name, options in {
            "f16": {"flash_attention": True},
            "q8_0": {"flash_attention": True, "kv_cache_type": "q8_0"},
            "q4_0": {"flash_attention": True, "kv_cache_type": "q4_0"},
            "q8_0 without flash attention": {"kv_cache_type": "q8_0"},
        }.items():
            made[name] = load_engine(model_path, num_parallel=1, **options)  # type: ignore[arg-type]
        yield made
    finally:
        for engine in made.values():
            engine.close()


@pytest.mark.model
def test_quantized_caches_hold_the_same_tokens_in_fewer_bytes(
    engines: dict[str, LlamaCppEngine],
) -> None:
    sizes = {}
    for name, engine in engines.items():
        answer = text(run(engine, PROMPT, max_tokens=8))
        assert answer.strip(), name
        sizes[name] = cached_bytes(engine)
    # q8_0 stores 34 bytes per 32 values, q4_0 18, f16 64 (plus the cells' positions)
    assert 0.45 < sizes["q8_0"] / sizes["f16"] < 0.6, sizes
    assert 0.2 < sizes["q4_0"] / sizes["f16"] < 0.35, sizes
    # without flash attention llama.cpp cannot quantize values: the cache stays f16
    assert sizes["q8_0 without flash attention"] == sizes["f16"], sizes
    assert engines["q8_0"].info.size_bytes < engines["f16"].info.size_bytes


@pytest.mark.model
def test_a_quantized_cache_without_flash_attention_is_reported(
    model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        engine = load_engine(model_path, num_parallel=1, kv_cache_type="q4_0")  # type: ignore[arg-type]
    engine.close()
    assert "kv_cache_type q4_0 needs flash_attention; the KV cache stays f16" in caplog.text


def test_an_unknown_cache_type_is_refused_before_loading(tmp_path: Path) -> None:
    # before the file is even looked for (a missing one would be ModelLoadFailed)
    with pytest.raises(InvalidRequest, match="kv_cache_type must be one of f16, q8_0, q4_0"):
        load_engine(tmp_path / "absent.gguf", kv_cache_type="q5_1")  # type: ignore[arg-type]


def test_heads_that_are_not_whole_blocks_keep_an_f16_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # llama.cpp refuses a q8_0 cache for heads of 80 values (Phi-2's): the load would fail
    model = write_probe_model(tmp_path / "heads80.gguf", embed=160, heads=2)
    with caplog.at_level(logging.WARNING):
        engine = load_engine(model, num_parallel=1, flash_attention=True, kv_cache_type="q8_0")  # type: ignore[arg-type]
    try:
        assert len(run(engine, [1, 5, 6, 7], max_tokens=3)) > 0
        assert "heads of a multiple of 32 values (this model's: 80)" in caplog.text
    finally:
        engine.close()

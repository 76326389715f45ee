"""The llama.cpp backend's ``quantize``: an F16 SmolLM2 to Q8_0 with per-tensor progress
read from llama.cpp's log, and llama.cpp's own reason when it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from power_backend_llamacpp import LlamaCppBackend
from power_core.engine import Quantizer, QuantizeSpec
from power_core.errors import QuantizeFailed
from power_core.gguf import read_gguf_info

from .conftest import GREEDY, load_engine, run, text


def test_quantize_writes_a_model_that_generates(f16_model_path: Path, tmp_path: Path) -> None:
    backend = LlamaCppBackend()
    assert isinstance(backend, Quantizer)
    reports: list[tuple[int, int]] = []
    destination = tmp_path / "q8.gguf"
    spec = QuantizeSpec(
        f16_model_path, destination, "Q8_0", progress=lambda *report: reports.append(report)
    )
    backend.quantize(spec)
    tensors = read_gguf_info(f16_model_path).tensor_count
    assert reports == [(i, tensors) for i in range(tensors + 1)]
    assert read_gguf_info(destination).quantization == "Q8_0"
    engine = load_engine(destination)
    try:
        events = run(engine, "The capital of France is", max_tokens=8, sampling=GREEDY)
        assert "Paris" in text(events)
    finally:
        engine.close()


def test_llama_cpps_refusal_is_a_quantize_failed_with_its_reason(
    model_path: Path, tmp_path: Path
) -> None:
    with pytest.raises(QuantizeFailed) as caught:
        LlamaCppBackend().quantize(
            QuantizeSpec(model_path, tmp_path / "out.gguf", "Q8_0", progress=lambda *_: None)
        )
    assert "requantizing from type q4_1 is disabled" in caught.value.message

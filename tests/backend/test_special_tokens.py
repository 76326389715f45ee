"""Chat templates print ``bos_token`` and ``eos_token``: their text comes from the loaded
vocabulary, looked up by the ids in the GGUF header."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from power_backend_llamacpp.engine import LlamaCppEngine
from power_core.gguf import read_gguf_info
from power_core.models import ModelDetails, ResolvedModel
from power_core.special_tokens import special_tokens_of


def _model(model_path: Path) -> ResolvedModel:
    return ResolvedModel(
        name="smollm2:135m",
        digest="sha256:" + "0" * 64,
        model_path=model_path,
        model_digest="sha256:" + "1" * 64,
        format="gguf",
        size=model_path.stat().st_size,
        modified_at=datetime.now(UTC),
        details=ModelDetails(),
        metadata=dict(read_gguf_info(model_path).metadata),
    )


def test_bos_and_eos_texts_of_smollm2(engine: LlamaCppEngine, model_path: Path) -> None:
    assert special_tokens_of(_model(model_path), engine) == ("<|im_start|>", "<|im_end|>")


def test_unknown_or_out_of_range_ids_give_empty_texts(
    engine: LlamaCppEngine, model_path: Path
) -> None:
    model = _model(model_path)
    model.metadata.pop("tokenizer.ggml.bos_token_id")
    model.metadata["tokenizer.ggml.eos_token_id"] = engine.info.vocab_size  # one too far
    assert special_tokens_of(model, engine) == ("", "")
    assert special_tokens_of(replace(_model(model_path), format="safetensors"), engine) == (
        "",
        "",
    )

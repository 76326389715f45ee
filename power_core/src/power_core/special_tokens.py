"""The text of a model's BOS and EOS tokens, which chat templates print as ``bos_token``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from power_core.gguf import read_gguf_info
from power_core.models import ResolvedModel


@lru_cache(maxsize=32)
def _special_tokens(path: Path, digest: str) -> tuple[str, str]:
    info = read_gguf_info(path, include_large_arrays=True)
    tokens = info.metadata.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list):
        return "", ""

    def text(key: str) -> str:
        index = info.metadata.get(key)
        if isinstance(index, int) and 0 <= index < len(tokens):
            return str(tokens[index])
        return ""

    return text("tokenizer.ggml.bos_token_id"), text("tokenizer.ggml.eos_token_id")


def special_tokens_of(model: ResolvedModel) -> tuple[str, str]:
    """``(bos, eos)`` token texts of a GGUF model; empty strings when unknown."""
    if model.format != "gguf":
        return "", ""
    return _special_tokens(model.model_path, model.model_digest)

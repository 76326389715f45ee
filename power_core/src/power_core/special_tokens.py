"""The text of a model's BOS and EOS tokens, which chat templates print as ``bos_token``."""

from __future__ import annotations

from power_core.engine import Engine
from power_core.models import ResolvedModel


def special_tokens_of(model: ResolvedModel, engine: Engine) -> tuple[str, str]:
    """``(bos, eos)`` token texts of a GGUF model as its loaded vocabulary spells them;
    empty strings when unknown. The ids come from the header already parsed."""
    if model.format != "gguf":
        return "", ""

    def text(key: str) -> str:
        index = model.metadata.get(key)
        if isinstance(index, int) and 0 <= index < engine.info.vocab_size:
            return engine.detokenize([index])
        return ""

    return text("tokenizer.ggml.bos_token_id"), text("tokenizer.ggml.eos_token_id")

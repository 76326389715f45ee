"""The text of a model's BOS and EOS tokens, which chat templates print as ``bos_token``."""

from __future__ import annotations

import contextlib
import weakref

from power_core.engine import Engine
from power_core.models import ResolvedModel

#: engine -> token id -> text: every chat request needs them, and a loaded vocabulary never
#: changes
_texts: weakref.WeakKeyDictionary[Engine, dict[int, str]] = weakref.WeakKeyDictionary()


def special_tokens_of(model: ResolvedModel, engine: Engine) -> tuple[str, str]:
    """``(bos, eos)`` token texts of a GGUF model as its loaded vocabulary spells them;
    empty strings when unknown. The ids come from the header already parsed."""
    if model.format != "gguf":
        return "", ""
    known: dict[int, str] = {}
    with contextlib.suppress(TypeError):  # an engine without weak references: no memory
        known = _texts.setdefault(engine, {})

    def text(key: str) -> str:
        index = model.metadata.get(key)
        if not isinstance(index, int) or not 0 <= index < engine.info.vocab_size:
            return ""
        if index not in known:
            known[index] = engine.detokenize([index])
        return known[index]

    return text("tokenizer.ggml.bos_token_id"), text("tokenizer.ggml.eos_token_id")

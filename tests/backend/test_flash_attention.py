"""Flash attention is a load option: off by default (slower on CPUs), on when configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import chat, done, load_engine, run, text


@pytest.mark.model
@pytest.mark.parametrize("flash_attention", [False, True])
def test_both_attention_kernels_answer(model_path: Path, flash_attention: bool) -> None:
    engine = load_engine(model_path, num_parallel=2, flash_attention=flash_attention)
    try:
        events = run(engine, chat("What is the capital of France?"), max_tokens=24)
    finally:
        engine.close()
    assert done(events).usage.completion_tokens > 0
    assert "Paris" in text(events)

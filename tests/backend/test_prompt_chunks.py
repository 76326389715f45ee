"""A prompt that arrives while others generate is read a quarter of a batch at a time, so
their streams pause for short steps; with nothing generating it takes whole batches."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from power_backend_llamacpp import batching
from power_backend_llamacpp.batching import MIN_PROMPT_CHUNK, prompt_budget
from power_core.engine import CompletionJob
from power_core.types import TextDelta

from .conftest import GREEDY, chat, done, load_engine, run, text

#: a prompt of several hundred tokens
LONG = chat("Summarize this. " + "The history of the old harbour city is long and varied. " * 70)


def test_the_budget_is_a_batch_alone_and_a_quarter_beside_generating_sequences() -> None:
    assert prompt_budget(512, 0) == 512
    assert prompt_budget(512, 1) == 127
    assert prompt_budget(512, 8) == 120
    # a small batch still lets a prompt advance, within the room the batch has
    assert prompt_budget(32, 8) == MIN_PROMPT_CHUNK
    assert prompt_budget(20, 8) == 12
    assert prompt_budget(8, 8) == 0


def test_a_long_prompt_beside_a_running_stream_comes_in_quarter_batches(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = load_engine(model_path, num_parallel=2, num_batch=256, num_ctx=2048)
    batches: list[Counter[int]] = []
    real_decode = batching.lc.llama_decode

    def recording_decode(ctx: object, batch: object) -> int:
        count = batch.n_tokens  # type: ignore[attr-defined]
        batches.append(Counter(batch.seq_id[i][0] for i in range(count)))  # type: ignore[attr-defined]
        return int(real_decode(ctx, batch))

    monkeypatch.setattr(batching.lc, "llama_decode", recording_decode)
    try:
        alone = run(engine, LONG, max_tokens=1)
        prompt_tokens = done(alone).usage.prompt_tokens
        assert prompt_tokens > 3 * 256
        assert [sum(b.values()) for b in batches[:3]] == [256, 256, 256]  # nothing beside it

        batches.clear()
        story = engine.submit(
            CompletionJob(chat("Tell me a long story."), sampling=GREEDY, max_tokens=400)
        )
        events = iter(story)
        for event in events:
            if isinstance(event, TextDelta):
                break
        long = run(engine, LONG.replace("Summarize", "Shorten"), max_tokens=4)
        rest = list(events)
        assert text(long)
        assert done(rest).usage.completion_tokens > 100  # generating all along
        beside = [b for b in batches if len(b) == 2]
        # every step with both: the story's one token and at most 63 prompt tokens
        assert beside and all(sorted(b.values())[0] == 1 for b in beside)
        assert max(sum(b.values()) for b in beside) == 256 // 4
        assert sum(sum(b.values()) - 1 for b in beside) >= done(long).usage.prompt_tokens - 63
    finally:
        engine.close()

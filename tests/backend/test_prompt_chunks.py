"""Prompts read while others generate: a quarter of a batch per step between them, the
shortest first, so running streams pause for short steps and a short question is not held
behind a long document; with nothing generating, whole batches."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from power_backend_llamacpp import batching
from power_backend_llamacpp.engine import LlamaCppEngine
from power_backend_llamacpp.images import ImagePrompt, ImageRun
from power_backend_llamacpp.jobs import Job
from power_backend_llamacpp.prompt_chunks import MIN_PROMPT_CHUNK, prompt_budget, prompt_takes
from power_core.concurrency import EventChannel
from power_core.engine import CompletionJob, EventStream
from power_core.types import PromptProgress, TextDelta

from .conftest import GREEDY, chat, done, load_engine, run, text

#: a prompt of about 830 tokens
LONG = chat("Summarize this. " + "The history of the old harbour city is long and varied. " * 70)
#: SmolLM2's end-of-generation tokens banned: the running story goes to its token limit
ENDLESS = replace(GREEDY, logit_bias={0: -100.0, 1: -100.0, 2: -100.0})
BATCH = 256


def test_prompts_take_a_batch_alone_and_fill_a_quarter_beside_generating_sequences() -> None:
    assert prompt_budget(512, 0) == 512
    assert prompt_budget(512, 1) == 127  # the step: 128 tokens in all
    assert prompt_budget(512, 8) == 120
    assert prompt_budget(512, 100) == 64  # at least an eighth of the batch
    assert prompt_budget(512, 500) == 12  # no more than the batch has room for
    assert prompt_budget(32, 8) == MIN_PROMPT_CHUNK  # a small batch still lets prompts on
    assert prompt_budget(20, 8) == 12
    assert prompt_budget(8, 8) == 0


def prompt_job(length: int, done: int = 0, images: dict[int, int] | None = None) -> Job:
    """A job of ``length`` prompt tokens, ``done`` read; ``images`` maps where each image
    starts to its length."""
    tokens = [0] * length
    runs = {start: ImageRun(None, size) for start, size in (images or {}).items()}
    for start, size in (images or {}).items():
        tokens[start : start + size] = [-7] * size
    job = Job(
        tokens,
        EventChannel(),
        max_tokens=None,
        logprobs=None,
        return_context=False,
        t_submit=0,
        images=ImagePrompt(None, tokens, runs) if images else None,
    )
    job.prompt_done = done
    return job


def test_the_shortest_rest_of_a_prompt_is_read_first() -> None:
    job = prompt_job

    # rests of 300, 20 and 50 tokens, listed by sequence id
    assert prompt_takes([job(300), job(20), job(60, done=10)], 128, 510) == [58, 20, 50]
    assert prompt_takes([job(300), job(20)], 10, 510) == [0, 10]
    assert prompt_takes([job(5), job(5)], 512, 512) == [5, 5]


def test_a_prompt_is_read_up_to_its_next_image_which_the_engine_reads_alone() -> None:
    seeing = prompt_job(40, images={10: 4, 14: 4, 30: 4})
    assert prompt_takes([seeing], 512, 512) == [10]
    seeing.prompt_done = 18  # after the two images side by side
    assert seeing.text_ahead() == 12
    # the shortest rest is the text up to the image
    assert prompt_takes([prompt_job(20), seeing], 512, 512) == [20, 12]
    images = seeing.images
    assert images is not None
    # a cache may hold a whole image or none of it
    assert [images.boundary(n) for n in (10, 11, 13, 14, 15, 18, 31, 34)] == [
        10,
        10,
        10,
        14,
        14,
        18,
        30,
        34,
    ]


def test_a_prompt_that_nearly_fits_is_read_whole_not_split() -> None:
    def jobs(*lengths: int) -> list[Job]:
        return [prompt_job(n) for n in lengths]

    # a burst of six short prompts while two sequences generate: one step, not two
    assert prompt_takes(jobs(24, 24, 24, 24, 24, 24), 126, 510) == [24] * 6
    # only the prompt that crosses the budget runs past it; the next wait, unsplit
    assert prompt_takes(jobs(*[24] * 8), 126, 510) == [24] * 6 + [0, 0]
    # a prompt far longer than that is still read a budget at a time
    assert prompt_takes(jobs(24, 1800), 126, 510) == [24, 102]
    # never beyond the room the batch has
    assert prompt_takes(jobs(10, 10), 12, 12) == [10, 2]


@pytest.fixture()
def recorded(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LlamaCppEngine, list[Counter[int]]]]:
    """An engine with batches of 256 tokens, and the tokens per sequence of every batch it
    decodes (llama.cpp's own decode, recorded on the way)."""
    engine = load_engine(model_path, num_parallel=3, num_batch=BATCH, num_ctx=2048)
    batches: list[Counter[int]] = []
    real_decode = batching.lc.llama_decode

    def recording_decode(ctx: object, batch: Any) -> int:
        batches.append(Counter(batch.seq_id[i][0] for i in range(batch.n_tokens)))
        return int(real_decode(ctx, batch))

    monkeypatch.setattr(batching.lc, "llama_decode", recording_decode)
    yield engine, batches
    engine.close()


def running_story(engine: LlamaCppEngine) -> tuple[EventStream, Iterator[Any]]:
    """A story of 150 tokens, already generating."""
    story = engine.submit(
        CompletionJob(chat("Tell me a long story."), sampling=ENDLESS, max_tokens=150)
    )
    events = iter(story)
    for event in events:
        if isinstance(event, TextDelta):
            break
    return story, events


def test_a_long_prompt_beside_a_running_stream_comes_in_quarter_batches(
    recorded: tuple[LlamaCppEngine, list[Counter[int]]],
) -> None:
    engine, batches = recorded
    alone = run(engine, LONG, max_tokens=1)
    assert done(alone).usage.prompt_tokens > 3 * BATCH
    assert [sum(b.values()) for b in batches[:3]] == [BATCH] * 3  # nothing beside it

    batches.clear()
    _, story = running_story(engine)
    long = run(engine, LONG.replace("Summarize", "Shorten"), max_tokens=4)
    assert text(long)
    assert done(list(story)).usage.completion_tokens == 150
    beside = [b for b in batches if len(b) == 2]
    assert max(sum(b.values()) for b in beside) == BATCH // 4  # the story's token included
    usage = done(long).usage
    read = sum(max(b.values()) for b in beside if max(b.values()) > 1)
    assert read == usage.prompt_tokens - usage.cached_tokens  # all of it, in those steps


def test_a_short_prompt_is_not_held_behind_a_long_one(
    recorded: tuple[LlamaCppEngine, list[Counter[int]]],
) -> None:
    engine, batches = recorded
    _, story = running_story(engine)
    long = engine.submit(CompletionJob(LONG, sampling=GREEDY, max_tokens=2))
    long_events = iter(long)
    for event in long_events:
        if isinstance(event, PromptProgress):
            break  # the long prompt is being read
    short = run(engine, chat("Say yes."), max_tokens=2)
    rest = list(long_events)
    list(story)
    short_prompt = done(short).usage.prompt_tokens
    assert done(rest).usage.prompt_tokens > 3 * BATCH
    # the step that admitted the short prompt read all of it, the long one the rest
    first = next(i for i, b in enumerate(batches) if len(b) == 3)
    counts = sorted(batches[first].values())
    assert counts == sorted([1, BATCH // 4 - 1 - short_prompt, short_prompt])
    # and the short one generated while the long one was still being read
    later = [sorted(b.values()) for b in batches[first + 1 :]]
    assert any(counts[:2] == [1, 1] and counts[2] > 1 for counts in later)

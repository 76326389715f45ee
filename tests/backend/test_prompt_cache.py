"""The prompt cache: a sequence keeps its last job's KV cells, and a prompt that starts the
same way decodes only the rest, with the same output as without the cache (real model).

Greedy outputs are compared with the same prompt decoded from an empty sequence: an engine
with one sequence first runs an unrelated prompt, which takes that sequence's cells.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from power_backend_llamacpp.engine import LlamaCppEngine
from power_backend_llamacpp.slots import REREAD_TOKENS, Placement, SequenceSlots, common_prefix
from power_core.engine import CompletionJob
from power_core.types import SamplingOptions

from .conftest import GREEDY, done, load_engine, run, text

HISTORY = (
    "<|im_start|>user\nTell me about the sea.<|im_end|>\n<|im_start|>assistant\n"
    "The sea is vast and deep, home to fish, whales and coral reefs.<|im_end|>\n"
)
FIRST_TURN = HISTORY + "<|im_start|>user\nAnd rivers?<|im_end|>\n<|im_start|>assistant\n"
UNRELATED = "Zebras are"


@pytest.fixture(scope="module")
def one_sequence(model_path: Path) -> Iterator[LlamaCppEngine]:
    engine = load_engine(model_path, num_parallel=1)
    yield engine
    engine.close()


def uncached(engine: LlamaCppEngine, prompt: str, **job: object) -> str:
    """``prompt``'s output decoded from an empty sequence."""
    run(engine, UNRELATED, max_tokens=1)
    events = run(engine, prompt, **job)
    assert done(events).usage.cached_tokens == 0
    return text(events)


def test_a_prompt_that_extends_the_last_decodes_only_what_is_new(
    one_sequence: LlamaCppEngine,
) -> None:
    expected = uncached(one_sequence, FIRST_TURN + "Rivers", max_tokens=12)
    run(one_sequence, HISTORY, max_tokens=4)  # the first turn, as a chat would send it
    history = one_sequence.tokenize(HISTORY)
    events = run(one_sequence, FIRST_TURN + "Rivers", max_tokens=12)
    usage = done(events).usage
    assert len(history) <= usage.cached_tokens < usage.prompt_tokens
    assert text(events) == expected


def test_the_same_prompt_again_reads_its_last_two_tokens(one_sequence: LlamaCppEngine) -> None:
    expected = uncached(one_sequence, FIRST_TURN, max_tokens=12)
    events = run(one_sequence, FIRST_TURN, max_tokens=12)
    usage = done(events).usage
    assert usage.cached_tokens == usage.prompt_tokens - REREAD_TOKENS
    assert text(events) == expected


@pytest.fixture(scope="module")
def served_like(model_path: Path) -> Iterator[LlamaCppEngine]:
    """An engine with the server's defaults (4,096 cells, batches of 512, 4 sequences)."""
    engine = load_engine(model_path, num_ctx=4096, num_batch=512, num_parallel=4)
    yield engine
    engine.close()


def test_a_repeated_request_answers_as_the_first_time(served_like: LlamaCppEngine) -> None:
    # answered otherwise on every repeat (on an AMD EPYC without AMX) when its last token
    # alone was read again: "Les couleurs de l'éclaire" for "Les couleurs de l'étoile"
    prompt = (
        "<|im_start|>system\nReply in French.<|im_end|>\n<|im_start|>user\n"
        "Name three colors of the rainbow.<|im_end|>\n<|im_start|>assistant\n"
    )
    greedy = SamplingOptions(temperature=0, top_k=1)
    first = run(served_like, prompt, max_tokens=12, sampling=greedy)
    assert done(first).usage.cached_tokens == 0
    for _ in range(2):
        again = run(served_like, prompt, max_tokens=12, sampling=greedy)
        assert done(again).usage.cached_tokens > 0
        assert text(again) == text(first)


def test_a_different_prompt_reuses_only_the_shared_start(one_sequence: LlamaCppEngine) -> None:
    run(one_sequence, FIRST_TURN, max_tokens=2)
    other = "<|im_start|>user\nWhat is a volcano?<|im_end|>\n<|im_start|>assistant\n"
    shared = common_prefix(one_sequence.tokenize(FIRST_TURN), one_sequence.tokenize(other))
    events = run(one_sequence, other, max_tokens=12)
    assert done(events).usage.cached_tokens == shared > 0
    assert text(events) == uncached(one_sequence, other, max_tokens=12)


def test_several_choices_start_from_a_cached_prompt(model_path: Path) -> None:
    engine = load_engine(model_path, num_parallel=3)
    try:
        sampling = SamplingOptions(temperature=0.9, seed=7, repeat_penalty=1.0)
        first = run(engine, FIRST_TURN, max_tokens=10, n=2, sampling=sampling)
        assert done(first).usage.cached_tokens == 0
        again = run(engine, FIRST_TURN, max_tokens=10, n=2, sampling=sampling)
        assert done(again).usage.cached_tokens == done(again).usage.prompt_tokens - REREAD_TOKENS
        assert [text(again, i) for i in (0, 1)] == [text(first, i) for i in (0, 1)]
    finally:
        engine.close()


def test_a_busy_sequence_is_never_shared(model_path: Path) -> None:
    engine = load_engine(model_path, num_parallel=2)
    try:
        run(engine, FIRST_TURN, max_tokens=2)
        outer = engine.submit(CompletionJob(FIRST_TURN, sampling=GREEDY, max_tokens=30))
        inner = run(engine, FIRST_TURN, max_tokens=5)  # one of the two finds it taken
        outer_events = list(outer)
        counts = sorted([done(inner).usage.cached_tokens, done(outer_events).usage.cached_tokens])
        assert counts[0] == 0 and counts[1] == done(inner).usage.prompt_tokens - REREAD_TOKENS
    finally:
        engine.close()


def test_a_new_conversation_leaves_another_conversations_cache_alone(model_path: Path) -> None:
    """Sharing only a start (a system prompt) is no reason to cut a sequence's cache."""
    engine = load_engine(model_path, num_parallel=2)
    try:
        run(engine, FIRST_TURN, max_tokens=4)
        other = "<|im_start|>user\nWhat is a volcano?<|im_end|>\n<|im_start|>assistant\n"
        assert done(run(engine, other, max_tokens=4)).usage.cached_tokens == 0  # empty one
        follow_up = run(engine, FIRST_TURN + "Rivers", max_tokens=4)
        assert done(follow_up).usage.cached_tokens >= len(engine.tokenize(FIRST_TURN))
    finally:
        engine.close()


def slots_holding(held: dict[int, list[int]], n_parallel: int = 4) -> SequenceSlots:
    """Free sequences holding ``held`` (choose() never touches the memory)."""
    slots = SequenceSlots(None, n_parallel)
    for seq, tokens in held.items():
        slots._free.remove(seq)
        slots.release(seq, tokens)
    return slots


def test_a_sequence_is_chosen_for_a_prefix_that_keeps_half_of_it() -> None:
    slots = slots_holding({0: [1, 2, 3, 4, 5, 6], 2: [1, 2, 3, 7]})
    assert slots.choose([1, 2, 3, 4, 5, 6, 8]) == Placement(0, 6)  # the follow-up of 0's
    assert slots.choose([1, 2, 3, 7, 9]) == Placement(2, 4)
    assert slots.choose([1, 2, 3, 9]) == Placement(0, 3)  # half of 0 and 3 of 4 of 2: the lower id
    assert slots.choose([1, 2, 9]) == Placement(2, 2)  # half of what 2 holds
    assert slots.choose([1, 9]) == Placement(1, 0)  # less than half of either: the lowest empty one


def test_without_an_empty_sequence_the_oldest_cache_is_evicted() -> None:
    slots = slots_holding({1: [1, 2, 3, 4], 0: [5, 6, 7, 8]}, n_parallel=2)  # 1 is older
    assert slots.choose([5, 9]) == Placement(1, 0)  # 0's one shared token is no reason
    assert slots.choose([1, 9]) == Placement(1, 1)


def test_fresh_sequences_go_lowest_first() -> None:
    slots = SequenceSlots(None, 4)
    taken = [slots.take_for([1, 2, 3])[0] for _ in range(3)]
    assert taken == [0, 1, 2]
    slots.release(1, [1, 2, 3])
    # n > 1: the next choice goes between 0 and 2, where 1's cache moves out of its way
    assert slots.choose([]) == Placement(1, 0, ((1, 3),))


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [([], [], 0), ([1, 2, 3], [1, 2, 3], 3), ([1, 2, 3], [1, 2], 2), ([1, 9], [1, 2, 3], 1)],
)
def test_common_prefix(a: list[int], b: list[int], expected: int) -> None:
    assert common_prefix(a, b) == expected


def test_common_prefix_agrees_with_a_plain_scan() -> None:
    rng = random.Random(1)
    for _ in range(500):
        a = [rng.randrange(3) for _ in range(rng.randrange(12))]
        b = [rng.randrange(3) for _ in range(rng.randrange(12))]
        shorter = min(len(a), len(b))
        plain = next((i for i in range(shorter) if a[i] != b[i]), shorter)
        assert common_prefix(a, b) == plain

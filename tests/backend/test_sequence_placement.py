"""Where a job runs: next to the running sequences, its cache copied there if need be.

llama.cpp decodes running sequences 0 and 2 in two passes over the weights, 0 and 1 in
one. The unit tests check the placement rule; the real-model tests check that a cache
copied to another sequence id gives the same output as the cache left in place, that the
cache moved out of the way still serves its conversation, and that short jobs never move.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from power_backend_llamacpp import engine as engine_module
from power_backend_llamacpp.engine import LlamaCppEngine
from power_backend_llamacpp.slots import Placement, SequenceSlots, count_runs
from power_core.arrivals import ARRIVING
from power_core.engine import CompletionJob
from power_core.types import EngineEvent, TextDelta

from .conftest import GREEDY, chat, done, load_engine, run, text

SLOTS_LOG = "power_backend_llamacpp.slots"
BATCHING_LOG = "power_backend_llamacpp.batching"


def slots_with(
    held: dict[int, list[int]], n_parallel: int, busy: tuple[int, ...] = ()
) -> SequenceSlots:
    """Slots (no context: only :meth:`SequenceSlots.choose` may be called) where ``held``
    sequences hold those tokens and ``busy`` ones run."""
    slots = SequenceSlots(None, n_parallel)
    for seq, tokens in held.items():
        slots._free.remove(seq)
        slots.release(seq, tokens)
    for seq in busy:
        slots._free.remove(seq)
    return slots


A, B, C = [1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]
#: the next turn of conversation C
C_NEXT = [*C, 13]


@pytest.mark.parametrize(
    ("seqs", "runs"),
    [(set(), 0), ({3}, 1), ({0, 1, 2}, 1), ({0, 2}, 2), ({0, 1, 4, 6, 7}, 3)],
)
def test_count_runs(seqs: set[int], runs: int) -> None:
    assert count_runs(seqs) == runs


def test_with_nothing_running_a_cache_is_taken_where_it_is() -> None:
    slots = slots_with({2: C}, 4)
    assert slots.choose(C_NEXT) == Placement(2, 4)


def test_a_cache_next_to_the_running_sequences_stays_where_it_is() -> None:
    slots = slots_with({1: C}, 4, busy=(0,))
    assert slots.choose(C_NEXT) == Placement(1, 4)


def test_a_cache_apart_from_them_is_copied_to_an_empty_sequence_next_to_them() -> None:
    slots = slots_with({2: C}, 4, busy=(0,))
    assert slots.choose(C_NEXT) == Placement(1, 4, ((2, 1),))


def test_a_cache_in_the_way_moves_to_an_empty_sequence_first() -> None:
    slots = slots_with({1: B, 2: C}, 4, busy=(0,))
    assert slots.choose(C_NEXT) == Placement(1, 4, ((1, 3), (2, 1)))


def test_with_no_empty_sequence_the_older_cache_beside_them_is_evicted() -> None:
    slots = slots_with({1: B, 2: C}, 3, busy=(0,))
    assert slots.choose(C_NEXT) == Placement(1, 4, ((2, 1),))
    slots = slots_with({1: A, 3: B, 0: C}, 4, busy=(2,))  # C returns; 1 and 3 are spots
    assert slots.choose(C_NEXT) == Placement(1, 4, ((0, 1),))  # 1 is older than 3


def test_a_cache_another_job_of_the_same_step_takes_is_never_evicted() -> None:
    slots = slots_with({1: A, 3: B, 0: C}, 4, busy=(2,))
    assert slots.choose(C_NEXT, keep=frozenset({1})) == Placement(3, 4, ((0, 3),))
    assert slots.choose(C_NEXT, keep=frozenset({1, 3})) == Placement(0, 4)
    assert slots.choose([20], keep=frozenset({1})) == Placement(3, 0)


def test_a_short_job_never_moves() -> None:
    slots = slots_with({2: C}, 4, busy=(0,))
    assert slots.choose(C_NEXT, may_move=False) == Placement(2, 4)


def test_a_model_whose_sequences_cannot_move_never_moves() -> None:
    slots = SequenceSlots(None, 4, can_move=False)
    slots._free.remove(0)
    slots._free.remove(2)
    slots.release(2, C)
    assert slots.choose(C_NEXT) == Placement(2, 4)


def test_a_new_conversation_fills_a_gap_between_running_sequences() -> None:
    slots = slots_with({1: B}, 4, busy=(0, 2))
    assert slots.choose([20, 21]) == Placement(1, 0, ((1, 3),))  # B's cache parked in 3


def test_a_new_conversation_with_no_empty_sequence_left_evicts_beside_the_running_ones() -> None:
    slots = slots_with({0: A, 1: B, 2: C}, 4, busy=(3,))
    assert slots.choose([20, 21]) == Placement(2, 0)  # not the oldest cache, 0: a run more


def test_another_choice_of_the_same_job_goes_next_to_the_first() -> None:
    slots = slots_with({1: B}, 4, busy=(0,))
    assert slots.choose([]) == Placement(1, 0, ((1, 2),))


# --------------------------------------------------------------------- real model ---------

#: the first turn of three conversations
FIRST = {
    "a": chat("Tell me a long story about a dragon."),
    "b": chat("What is the capital of France?"),
    "c": chat("Name three colours of the rainbow."),
    "d": chat("How do bees make honey?"),
}
#: the model's first answers (filled once per module)
FOLLOW_UPS: dict[str, str] = {}


def follow_up(name: str) -> str:
    """The conversation's second turn: its first turn, the model's answer, a question."""
    return FIRST[name] + FOLLOW_UPS[name] + chat("Please go on.")


@pytest.fixture(scope="module", autouse=True)
def first_answers(model_path: Path) -> None:
    """Each conversation's first answer, as the model gives it (greedy)."""
    engine = load_engine(model_path, num_parallel=1)
    try:
        for name, prompt in FIRST.items():
            FOLLOW_UPS[name] = text(run(engine, prompt, max_tokens=24)) + "<|im_end|>\n"
    finally:
        engine.close()


@pytest.fixture()
def engine(model_path: Path) -> Iterator[LlamaCppEngine]:
    engine = load_engine(model_path, num_parallel=4)
    yield engine
    engine.close()


def with_a_running(
    engine: LlamaCppEngine, name: str, max_tokens: int = 24
) -> tuple[list[EngineEvent], list[EngineEvent]]:
    """Start conversation a's follow-up (long), and once it generates, ``name``'s; the
    events of both."""
    long = engine.submit(CompletionJob(follow_up("a"), sampling=GREEDY, max_tokens=200))
    events = iter(long)
    running: list[EngineEvent] = []
    for event in events:
        running.append(event)
        if isinstance(event, TextDelta):
            break
    other = run(engine, follow_up(name), max_tokens=max_tokens)
    running.extend(events)
    assert done(running).usage.completion_tokens > 24  # still running when the other came
    return running, other


def moves(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == SLOTS_LOG]


def sequences_running(caplog: pytest.LogCaptureFixture) -> list[str]:
    messages = [r.getMessage() for r in caplog.records if r.name == BATCHING_LOG]
    return [m.split("running in sequences ")[1] for m in messages if "admitted" in m]


def test_a_cache_copied_next_to_a_running_sequence_gives_the_same_output(
    model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    in_place = load_engine(model_path, num_parallel=4)
    try:
        for name in ("a", "c"):  # c's cache lands next to a's: nothing moves
            run(in_place, FIRST[name] + FOLLOW_UPS[name])
        _, expected = with_a_running(in_place, "c")
        assert moves(caplog) == []
        assert sequences_running(caplog)[-1] == "[0, 1]"
    finally:
        in_place.close()
    caplog.clear()
    moved = load_engine(model_path, num_parallel=4)
    try:
        for name in ("a", "b", "c"):  # c's cache in 2, b's (in the way) in 1
            run(moved, FIRST[name] + FOLLOW_UPS[name])
        _, events = with_a_running(moved, "c")
        assert moves(caplog) == ["sequence 1 copied to 3", "sequence 2 copied to 1"]
        assert sequences_running(caplog)[-1] == "[0, 1]"
        assert text(events) == text(expected)
        cached = done(events).usage.cached_tokens
        assert cached == done(expected).usage.cached_tokens
        assert cached >= len(moved.tokenize(FIRST["c"] + FOLLOW_UPS["c"]))
        # b's cache, moved out of the way, still serves b
        caplog.clear()
        b_turn = run(moved, follow_up("b"), max_tokens=12)
        assert moves(caplog) == []
        assert done(b_turn).usage.cached_tokens >= len(moved.tokenize(FIRST["b"]))
    finally:
        moved.close()
    fresh = load_engine(model_path, num_parallel=4)
    try:
        run(fresh, FIRST["b"] + FOLLOW_UPS["b"])
        assert text(b_turn) == text(run(fresh, follow_up("b"), max_tokens=12))
    finally:
        fresh.close()


def test_a_short_job_runs_where_its_cache_is(
    engine: LlamaCppEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("a", "b", "c"):
        run(engine, FIRST[name] + FOLLOW_UPS[name])
    with_a_running(engine, "c", max_tokens=4)
    assert moves(caplog) == []
    assert sequences_running(caplog)[-1] == "[0, 2]"


def test_with_no_empty_sequence_the_cache_used_longest_ago_goes() -> None:
    slots = slots_with({2: C, 0: A, 1: B}, 3)  # released in this order: 2 is the oldest
    assert slots.choose([20, 21]) == Placement(2, 0)
    slots = slots_with({3: C, 0: B, 1: A}, 4, busy=(2,))  # spots 1 and 3: 3 is older
    assert slots.choose([20, 21]) == Placement(3, 0)


def test_conversations_returning_in_one_step_keep_each_others_caches(
    engine: LlamaCppEngine, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "b", "c", "d"):  # in 0, 1, 2, 3; a's is the oldest, then b's
        run(engine, FIRST[name] + FOLLOW_UPS[name])
    monkeypatch.setattr(engine_module, "BURST_WAIT_SECONDS", 30.0)
    caplog.set_level(logging.DEBUG)
    returning = ("c", "a", "b")
    events: dict[str, list[EngineEvent]] = {name: [] for name in returning}
    readers = []
    with ARRIVING.on_the_way():  # the engine waits until all three are queued
        for name in returning:
            stream = engine.submit(CompletionJob(follow_up(name), sampling=GREEDY, max_tokens=20))
            reader = threading.Thread(target=events[name].extend, args=(stream,))
            reader.start()
            readers.append(reader)
    for reader in readers:
        reader.join(timeout=60)
    # c stays in 2; a moves beside it into d's place (3), not into b's (1), which b takes
    assert moves(caplog) == ["sequence 0 copied to 3"]
    assert sequences_running(caplog) == ["[1, 2, 3]"]
    for name in returning:
        cached = done(events[name]).usage.cached_tokens
        assert cached >= len(engine.tokenize(FIRST[name] + FOLLOW_UPS[name]))

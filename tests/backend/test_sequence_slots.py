"""Which sequence a job takes (:class:`SequenceSlots`): the rule, then its bookkeeping on a
real llama.cpp context.

llama.cpp decodes running sequences 0 and 2 in two passes over the weights, 0 and 1 in
one, so a job goes beside the running sequences, its cache copied there if it sits apart.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp as lc
import pytest

from power_backend_llamacpp.slots import (
    MOVE_MIN_REUSED,
    REREAD_TOKENS,
    Placement,
    SequenceSlots,
    count_runs,
)

#: three conversations' cached tokens, long enough to be worth copying
A, B, C = (list(range(start, start + MOVE_MIN_REUSED + 4)) for start in (100, 200, 300))
LENGTH = len(C)
#: the next turn of conversation C
C_NEXT = [*C, 13]


def slots_with(
    held: dict[int, list[int]], n_parallel: int, busy: tuple[int, ...] = (), **options: bool
) -> SequenceSlots:
    """Slots without a context (only :meth:`SequenceSlots.choose` may be called): ``held``
    sequences hold those tokens, released in this order; ``busy`` ones run."""
    slots = SequenceSlots(None, n_parallel, **options)
    for seq, tokens in held.items():
        slots._free.remove(seq)
        slots.release(seq, tokens)
    for seq in busy:
        slots._free.remove(seq)
    return slots


@pytest.mark.parametrize(
    ("seqs", "runs"),
    [(set(), 0), ({3}, 1), ({0, 1, 2}, 1), ({0, 2}, 2), ({0, 1, 4, 6, 7}, 3)],
)
def test_count_runs(seqs: set[int], runs: int) -> None:
    assert count_runs(seqs) == runs


def test_with_nothing_running_a_cache_is_taken_where_it_is() -> None:
    assert slots_with({2: C}, 4).choose(C_NEXT) == Placement(2, LENGTH)


def test_with_nothing_running_a_new_conversation_evicts_the_oldest_cache() -> None:
    assert slots_with({2: C, 0: A, 1: B}, 3).choose([7]) == Placement(2, 0)


def test_a_cache_beside_the_running_sequences_stays_where_it_is() -> None:
    assert slots_with({1: C}, 4, busy=(0,)).choose(C_NEXT) == Placement(1, LENGTH)


def test_a_cache_apart_from_them_is_copied_to_an_empty_sequence_beside_them() -> None:
    assert slots_with({2: C}, 4, busy=(0,)).choose(C_NEXT) == Placement(1, LENGTH, ((2, 1),))


def test_the_cache_in_the_way_moves_to_the_empty_sequence_farthest_from_them() -> None:
    slots = slots_with({1: B, 2: C}, 6, busy=(0,))
    assert slots.choose(C_NEXT) == Placement(1, LENGTH, ((1, 5), (2, 1)))


def test_with_no_empty_sequence_the_older_cache_beside_them_is_evicted() -> None:
    slots = slots_with({1: B, 2: C}, 3, busy=(0,))
    assert slots.choose(C_NEXT) == Placement(1, LENGTH, ((2, 1),))
    slots = slots_with({1: A, 3: B, 0: C}, 4, busy=(2,))  # 1 and 3 are beside 2
    assert slots.choose(C_NEXT) == Placement(1, LENGTH, ((0, 1),))  # 1 is older than 3


def test_a_cache_a_later_job_of_the_same_step_takes_is_never_evicted() -> None:
    slots = slots_with({1: A, 3: B, 0: C}, 4, busy=(2,))
    assert slots.choose(C_NEXT, keep=frozenset({1})) == Placement(3, LENGTH, ((0, 3),))
    assert slots.choose(C_NEXT, keep=frozenset({1, 3})) == Placement(0, LENGTH)
    assert slots.choose([7], keep=frozenset({1})) == Placement(3, 0)


def test_a_short_cached_prefix_is_decoded_again_beside_them_rather_than_copied() -> None:
    short = C[: MOVE_MIN_REUSED - 1]
    assert slots_with({2: short}, 4, busy=(0,)).choose([*short, 13]) == Placement(1, 0)


@pytest.mark.parametrize("options", [{"may_move": False}, {"can_move": False}])
def test_without_moves_a_job_still_goes_beside_them_when_nothing_is_evicted(
    options: dict[str, bool],
) -> None:
    may_move = options.get("may_move", True)
    can_move = options.get("can_move", True)

    def slots(held: dict[int, list[int]]) -> SequenceSlots:
        return slots_with(held, 4, busy=(0,), can_move=can_move)

    assert slots({2: C}).choose(C_NEXT, may_move=may_move) == Placement(2, LENGTH)
    assert slots({}).choose([7], may_move=may_move) == Placement(1, 0)
    # beside them is a cache that cannot move, and 2 is empty: both caches stay
    assert slots({1: B}).choose([7], may_move=may_move) == Placement(2, 0)


def test_a_new_conversation_fills_a_gap_between_running_sequences() -> None:
    slots = slots_with({1: B}, 4, busy=(0, 2))
    assert slots.choose([20, 21]) == Placement(1, 0, ((1, 3),))  # B's cache parked in 3


def test_with_no_empty_sequence_a_new_conversation_evicts_beside_them() -> None:
    slots = slots_with({0: A, 1: B, 2: C}, 4, busy=(3,))
    assert slots.choose([20, 21]) == Placement(2, 0)  # not the oldest cache, 0: a run more


def test_another_choice_of_the_same_job_goes_beside_the_first() -> None:
    assert slots_with({1: B}, 4, busy=(0,)).choose([]) == Placement(1, 0, ((1, 3),))


# ------------------------------------------------------------- on a real context ----------


@pytest.fixture()
def memory(model_path: Path) -> Iterator[Any]:
    """A llama.cpp context with four sequences of 64 cells each (one stream per sequence)
    and a function that decodes tokens into a sequence and returns the last logits."""
    params = lc.llama_model_default_params()
    params.use_extra_bufts = False
    model = lc.llama_model_load_from_file(str(model_path).encode(), params)
    cparams = lc.llama_context_default_params()
    cparams.n_ctx, cparams.n_seq_max, cparams.kv_unified = 64 * 4, 4, False
    cparams.n_batch = cparams.n_ubatch = 64
    cparams.n_threads = cparams.n_threads_batch = 2
    ctx = lc.llama_init_from_model(model, cparams)
    batch = lc.llama_batch_init(64, 0, 1)
    n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(model))

    def decode(seq: int, tokens: list[int], start: int) -> list[float]:
        for i, token in enumerate(tokens):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, start + i, 1
            batch.seq_id[i][0], batch.logits[i] = seq, i == len(tokens) - 1
        batch.n_tokens = len(tokens)
        assert lc.llama_decode(ctx, batch) == 0
        row = ctypes.cast(lc.llama_get_logits_ith(ctx, -1), ctypes.POINTER(ctypes.c_float))
        return list(row[:n_vocab])

    yield lc.llama_get_memory(ctx), decode
    lc.llama_batch_free(batch)
    lc.llama_free(ctx)
    lc.llama_model_free(model)


def cells(memory: Any, seq: int) -> tuple[int, int]:
    return int(lc.llama_memory_seq_pos_min(memory, seq)), int(
        lc.llama_memory_seq_pos_max(memory, seq)
    )


def assert_held_matches_cells(slots: SequenceSlots, memory: Any) -> None:
    for seq in slots._free:
        held = slots._held.get(seq)
        assert cells(memory, seq) == ((0, len(held) - 1) if held else (-1, -1)), seq


def test_moves_keep_the_cells_and_the_bookkeeping_in_step(memory: Any) -> None:
    kv, decode = memory
    slots = SequenceSlots(kv, 4)
    for seq, tokens in enumerate((A, B, C)):
        decode(seq, tokens, 0)
        slots.release(seq, tokens)  # 0, 1, 2 hold A, B, C; 3 is empty
    # C's continuation, read where C was decoded as a job reads it: its last tokens again
    reused = len(C_NEXT) - REREAD_TOKENS
    lc.llama_memory_seq_rm(kv, 2, reused, -1)
    expected = decode(2, C_NEXT[reused:], reused)
    lc.llama_memory_seq_rm(kv, 2, LENGTH, -1)
    slots._free = [0, 1, 2, 3]
    assert_held_matches_cells(slots, kv)
    assert slots.take_for([*A, 7]) == (0, reused)  # A runs in 0
    assert slots.take_for(C_NEXT) == (1, reused)  # C beside it; B's cache parked in 3
    assert slots._held == {2: C, 3: B}
    assert_held_matches_cells(slots, kv)
    assert cells(kv, 1) == (0, reused - 1)
    # the next decode makes the copies: C's continuation reads the same in 1
    assert decode(1, C_NEXT[reused:], reused) == expected
    assert slots.take_empty() == 2  # another choice of C's job: beside it, emptied
    assert cells(kv, 2) == (-1, -1)
    slots.release(0, A[:reused])  # (the tokens to read again, and 7, were never decoded)
    assert_held_matches_cells(slots, kv)
    assert slots.take_for([*B, 9]) == (3, reused)  # B's parked cache serves it


def test_a_gap_between_running_sequences_closes_and_its_cache_is_kept(memory: Any) -> None:
    kv, decode = memory
    slots = SequenceSlots(kv, 4)
    for prompt in (A, B, [*C, 13, 14]):  # three jobs run in 0, 1, 2
        seq, _ = slots.take_for(prompt)
        decode(seq, prompt, 0)
    expected = decode(2, [15], LENGTH + 2)  # the third job's next step, where it runs
    lc.llama_memory_seq_rm(kv, 2, LENGTH + 2, -1)
    slots.release(1, B)  # the middle one finishes: a gap
    assert slots.close_gap({0, 2}, 2) == 1
    assert slots._free == [2, 3] and slots._held == {3: B}
    assert cells(kv, 1) == (0, LENGTH + 1) and cells(kv, 2) == (-1, -1)
    assert_held_matches_cells(slots, kv)
    assert decode(1, [15], LENGTH + 2) == expected  # this decode makes the copies first
    # B's parked cache, copied beside them (all but the tokens read again)
    assert slots.take_for([*B, 9]) == (2, LENGTH + 1 - REREAD_TOKENS)
    assert slots.close_gap({0, 1, 2}, 2) is None  # no gap


def test_with_no_gap_or_nothing_movable_nothing_moves() -> None:
    assert slots_with({}, 4, busy=(0, 1)).close_gap({0, 1}, 1) is None
    assert slots_with({}, 4, busy=(0, 2), can_move=False).close_gap({0, 2}, 2) is None

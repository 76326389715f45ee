"""The context's sequences, and the prompt cache their KV cells make between jobs.

A sequence keeps its last job's tokens (prompt and output) in the KV cache after the job
ends. The next job takes the free sequence whose tokens share the longest prefix with its
prompt and decodes only the rest: a chat resends its whole history every turn, and this is
what llama-server's and Ollama's slots do too. A sequence is taken for its prefix only if
that keeps at least half of what it holds, so a new conversation that merely starts the
same way (a system prompt) does not cut another conversation's cache: it takes an empty
sequence, else (with nothing running) the one whose cache was used longest ago.

Where a job runs matters as much as what it reuses. With one KV stream per sequence,
llama.cpp splits a decode batch into one pass over the weights per run of consecutive
sequence ids: running sequences 0 and 2 decode at the speed of one stream, 0 and 1 at 1.4
times it (SmolLM2-135M, 2 cores). So while other sequences run, a job goes where it adds
no run (beside them, or into a gap between them): an empty sequence there first, else the
one there whose cache was used longest ago. A cache of at least ``MOVE_MIN_REUSED``
tokens that sits elsewhere is copied there (``llama_memory_seq_cp`` copies a whole
stream: about 10 ms for 2,048 cells of this model, against 8-11 ms that every later step
would lose). The cache in the way moves to the empty sequence farthest from the running
ones, else it is evicted; a cache that a job admitted later in the same step will take is
never evicted nor taken. Jobs that may generate only a few tokens, and models whose memory
is not a plain KV cache (recurrent, hybrid, sliding-window), copy nothing: they take an
empty sequence beside the running ones, else stay where their cache is, or take an empty
sequence elsewhere rather than evict a cache beside them. When a sequence between running
ones finishes or is cancelled, the highest running sequence moves into its place
(:meth:`close_gap`):
ad hoc, two 128-token stories with a 4-token answer between them finished in 2.05 s
instead of 2.77 s (their 2-token steps took 14.5-15.1 ms instead of 19.6-20.5 ms).
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from typing import Any

import llama_cpp as lc

log = logging.getLogger(__name__)

#: a shorter cached prefix is decoded again beside the running sequences rather than
#: copied there (a whole stream copy costs about as much as decoding a few tokens)
MOVE_MIN_REUSED = 16


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of ``a`` and ``b`` (slice compares, in C)."""
    low, high = 0, min(len(a), len(b))
    while low < high:  # invariant: a[:low] == b[:low]
        mid = (low + high + 1) // 2
        if a[low:mid] == b[low:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def count_runs(seqs: set[int]) -> int:
    """How many runs of consecutive ids ``seqs`` has ({0, 1, 4}: two)."""
    return sum(1 for seq in seqs if seq - 1 not in seqs)


#: the last tokens of a prompt read again when a sequence holds all of it (its last token's
#: logits are needed). Read alone, in a batch of one, that token's logits can come out
#: otherwise than in the batch of the whole prompt that first read it (llama.cpp's CPU
#: kernels differ by batch size), which can tip a greedy choice: a repeated request was
#: answered otherwise than the first time (SmolLM2 on an AMD EPYC without AMX, greedy:
#: "Les couleurs de l'étoile" first, "Les couleurs de l'éclaire" on every repeat). Read
#: with the token before it, the repeats answered as the first time did (and with three
#: before it too); the cost is one token more in that step
REREAD_TOKENS = 2


@dataclass(frozen=True)
class Placement:
    """Where a job runs: ``seq``, holding ``reused`` tokens of its prompt once the
    ``moves`` (source, destination) of whole sequences are made, in order."""

    seq: int
    reused: int
    moves: tuple[tuple[int, int], ...] = ()


class SequenceSlots:
    """Which sequence ids are free (ascending) and the tokens each holds.

    ``can_move``: sequences may be copied to other ids (a plain KV cache).
    """

    def __init__(self, memory: Any, n_parallel: int, *, can_move: bool = True) -> None:
        self._memory = memory
        self._n_parallel = n_parallel
        self._can_move = can_move
        self._free: list[int] = list(range(n_parallel))
        #: the tokens in each free sequence's KV cells, from position 0
        self._held: dict[int, list[int]] = {}
        #: when each sequence was last released (a count), for evicting the oldest cache
        self._released: dict[int, int] = {}
        self._releases = 0

    def free_count(self) -> int:
        return len(self._free)

    def choose(
        self, prompt: list[int], *, may_move: bool = True, keep: frozenset[int] = frozenset()
    ) -> Placement:
        """Where :meth:`take_for` would put ``prompt`` (nothing is changed).

        ``may_move``: the job is worth a copy (it may generate more than a few tokens).
        ``keep``: caches that jobs admitted after this one in the same step will take; none
        is evicted or taken for this one while another sequence will do.
        """
        source, reused = self.best_cache(prompt)
        busy = set(range(self._n_parallel)).difference(self._free)
        spots = self._spots(busy) if busy else []
        movable = may_move and self._can_move
        if source >= 0 and (not spots or source in spots):
            return Placement(source, reused)  # where it is adds no run
        if source >= 0 and reused >= MOVE_MIN_REUSED:
            candidates = [seq for seq in spots if seq not in keep and seq != source]
            if not movable or not candidates:
                return Placement(source, reused)
            spot = self._empty_else_oldest(candidates)
            parking = self._park(spot, busy) if spot in self._held else ()
            return Placement(spot, reused, (*parking, (source, spot)))
        # nothing worth copying: beside the running sequences (an empty one first), else
        # the sequence worth least anywhere
        free = [seq for seq in self._free if seq not in keep] or self._free
        candidates = [seq for seq in spots if seq in free]
        if candidates:
            spot = self._empty_else_oldest(candidates)
            parking = self._park(spot, busy) if movable and spot in self._held else ()
            if spot not in self._held or parking or all(seq in self._held for seq in free):
                return Placement(spot, common_prefix(self._held.get(spot, []), prompt), parking)
            # the cache beside them cannot move and an empty sequence is left: keep both
        seq = self._empty_else_oldest(free)
        return Placement(seq, common_prefix(self._held.get(seq, []), prompt))

    def take_for(
        self, prompt: list[int], *, may_move: bool = True, keep: frozenset[int] = frozenset()
    ) -> tuple[int, int]:
        """A free sequence for ``prompt`` (after the copies :meth:`choose` asks for), and how
        many of its first tokens that sequence already holds (at most all but
        :data:`REREAD_TOKENS`, decoded again for the last one's logits)."""
        placement = self.choose(prompt, may_move=may_move, keep=keep)
        for source, destination in placement.moves:
            self._copy(source, destination)
        seq = placement.seq
        self._free.remove(seq)
        reused = min(placement.reused, len(prompt) - REREAD_TOKENS)
        held = self._held.pop(seq, [])
        if reused > 0 and self._keep_only(seq, reused):
            return seq, reused
        if held:
            self._clear(seq)
        return seq, 0

    def take_empty(self, *, may_move: bool = True, keep: frozenset[int] = frozenset()) -> int:
        """A free sequence, emptied, for another choice of the job just taken (``n > 1``):
        placed as a job sharing nothing would be."""
        placement = self.choose([], may_move=may_move, keep=keep)
        for source, destination in placement.moves:
            self._copy(source, destination)
        self._free.remove(placement.seq)
        if self._held.pop(placement.seq, None):
            self._clear(placement.seq)
        return placement.seq

    def release(self, seq: int, tokens: list[int] | None) -> None:
        """``seq`` is free again, holding ``tokens``; None when its cells cannot be trusted
        (a failed decode) or hold nothing worth keeping."""
        if tokens:
            self._held[seq] = tokens
        else:
            self._clear(seq)
        self._releases += 1
        self._released[seq] = self._releases
        bisect.insort(self._free, seq)

    def close_gap(self, running: set[int], last: int) -> int | None:
        """When the ``running`` sequences (all of them, none reading a prompt) leave a free
        sequence between them, move ``last``, the highest, into the lowest such gap and
        return the gap (``last`` is then free and empty); None when nothing moves. The
        cache the gap held moves to an empty sequence, else to where the oldest cache is,
        unless it is the oldest itself (the move then evicts it)."""
        if not self._can_move or count_runs(running) <= 1:
            return None
        gap = next((seq for seq in self._free if min(running) < seq < last), None)
        if gap is None:
            return None
        if gap in self._held:
            moves = self._park(gap, running)
            others = [seq for seq in self._free if seq != gap]
            if not moves and others:
                oldest = min(others, key=lambda seq: self._released.get(seq, 0))
                if self._released.get(oldest, 0) < self._released.get(gap, 0):
                    moves = ((gap, oldest),)
            for source, destination in moves:
                self._copy(source, destination)
            self._held.pop(gap, None)
        # the running sequence's cells: copied before the next decode, which writes neither
        lc.llama_memory_seq_cp(self._memory, last, gap, -1, -1)
        self._clear(last)
        self._free.remove(gap)
        bisect.insort(self._free, last)
        log.debug("running sequence %d moved to %d", last, gap)
        return gap

    def forget_all(self) -> None:
        """Empty every free sequence (the engine is closing or its context is unusable)."""
        for seq in self._free:
            if self._held.pop(seq, None):
                self._clear(seq)

    def best_cache(self, prompt: list[int]) -> tuple[int, int]:
        """The free sequence holding the longest prefix of ``prompt`` that keeps at least
        half of what it holds, and that prefix's length; (-1, 0) if none does."""
        source, reused = -1, 0
        for seq in self._free:  # ascending: ties go to the lowest id
            held = self._held.get(seq)
            if held:
                shared = common_prefix(held, prompt)
                if shared > reused and 2 * shared >= len(held):
                    source, reused = seq, shared
        return source, reused

    def _spots(self, busy: set[int]) -> list[int]:
        """The free sequences that add the fewest runs to ``busy``, ascending."""
        runs = {seq: count_runs(busy | {seq}) for seq in self._free}
        fewest = min(runs.values())
        return [seq for seq in self._free if runs[seq] == fewest]

    def _park(self, spot: int, busy: set[int]) -> tuple[tuple[int, int], ...]:
        """The move of ``spot``'s cache to the empty sequence farthest from the running ones
        (so the next job beside them does not move it again); none if no sequence is empty."""
        taken = busy | {spot}
        empty = [seq for seq in self._free if seq not in self._held and seq != spot]
        if not empty:
            return ()
        parking = max(empty, key=lambda seq: (min(abs(seq - t) for t in taken), seq))
        return ((spot, parking),)

    def _empty_else_oldest(self, candidates: list[int]) -> int:
        """The lowest empty one of ``candidates``, else the one released longest ago."""
        empty = next((seq for seq in candidates if seq not in self._held), None)
        if empty is not None:
            return empty
        return min(candidates, key=lambda seq: self._released.get(seq, 0))

    def _copy(self, source: int, destination: int) -> None:
        """Make ``destination`` hold what ``source`` holds (llama.cpp copies the stream's
        cells before its next decode; until then neither is written)."""
        lc.llama_memory_seq_cp(self._memory, source, destination, -1, -1)
        self._held[destination] = self._held[source]
        self._released[destination] = self._released.get(source, 0)
        log.debug("sequence %d copied to %d", source, destination)

    def _keep_only(self, seq: int, n: int) -> bool:
        """Drop ``seq``'s cells from position ``n`` on; False if the cache cannot do it
        (recurrent models) or no longer holds the start (a sliding window dropped it)."""
        if not lc.llama_memory_seq_rm(self._memory, seq, n, -1):
            return False
        return int(lc.llama_memory_seq_pos_min(self._memory, seq)) == 0

    def _clear(self, seq: int) -> None:
        lc.llama_memory_seq_rm(self._memory, seq, -1, -1)

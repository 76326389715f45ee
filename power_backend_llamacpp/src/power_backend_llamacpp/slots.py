"""The context's sequences, and the prompt cache their KV cells make between jobs.

A sequence keeps its last job's tokens (prompt and output) in the KV cache after the job
ends. The next job takes the free sequence whose tokens share the longest prefix with its
prompt and decodes only the rest: a chat resends its whole history every turn, and this is
what llama-server's and Ollama's slots do too. A sequence is taken for its prefix only if
that keeps at least half of what it holds, so a new conversation that merely starts the
same way (a system prompt) does not cut another conversation's cache: it takes an empty
sequence, else the lowest free one. Lowest ids first, because with one KV stream per
sequence llama.cpp splits a decode batch into one pass per run of consecutive sequence
ids: running sequences 0, 2 and 5 cost three passes over the weights per token.
"""

from __future__ import annotations

import bisect
from typing import Any

import llama_cpp as lc


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


class SequenceSlots:
    """Which sequence ids are free (ascending) and the tokens each holds."""

    def __init__(self, memory: Any, n_parallel: int) -> None:
        self._memory = memory
        self._free: list[int] = list(range(n_parallel))
        #: the tokens in each free sequence's KV cells, from position 0
        self._held: dict[int, list[int]] = {}

    def free_count(self) -> int:
        return len(self._free)

    def choose(self, prompt: list[int]) -> tuple[int, int]:
        """The free sequence :meth:`take_for` would take for ``prompt``, and the length of
        the prefix they share (nothing is changed)."""
        best, reused = -1, 0
        for seq in self._free:  # ascending: ties go to the lowest id
            held = self._held.get(seq)
            if held:
                shared = common_prefix(held, prompt)
                if shared > reused and 2 * shared >= len(held):
                    best, reused = seq, shared
        if best < 0:
            best = self._lowest_empty_else_free()
            reused = common_prefix(self._held.get(best, []), prompt)
        return best, reused

    def take_for(self, prompt: list[int]) -> tuple[int, int]:
        """A free sequence for ``prompt``, and how many of its first tokens that sequence
        already holds (at most all but one: the last is decoded again for its logits)."""
        best, reused = self.choose(prompt)
        self._free.remove(best)
        reused = min(reused, len(prompt) - 1)
        held = self._held.pop(best, [])
        if reused > 0 and self._keep_only(best, reused):
            return best, reused
        if held:
            self._clear(best)
        return best, 0

    def take_empty(self) -> int:
        """The lowest empty free sequence, else the lowest free one, emptied (for the extra
        choices of ``n > 1``)."""
        seq = self._lowest_empty_else_free()
        self._free.remove(seq)
        if self._held.pop(seq, None):
            self._clear(seq)
        return seq

    def release(self, seq: int, tokens: list[int] | None) -> None:
        """``seq`` is free again, holding ``tokens``; None when its cells cannot be trusted
        (a failed decode) or hold nothing worth keeping."""
        if tokens:
            self._held[seq] = tokens
        else:
            self._clear(seq)
        bisect.insort(self._free, seq)

    def forget_all(self) -> None:
        """Empty every free sequence (the engine is closing or its context is unusable)."""
        for seq in self._free:
            if self._held.pop(seq, None):
                self._clear(seq)

    def _lowest_empty_else_free(self) -> int:
        return next((seq for seq in self._free if seq not in self._held), self._free[0])

    def _keep_only(self, seq: int, n: int) -> bool:
        """Drop ``seq``'s cells from position ``n`` on; False if the cache cannot do it
        (recurrent models) or no longer holds the start (a sliding window dropped it)."""
        if not lc.llama_memory_seq_rm(self._memory, seq, n, -1):
            return False
        return int(lc.llama_memory_seq_pos_min(self._memory, seq)) == 0

    def _clear(self, seq: int) -> None:
        lc.llama_memory_seq_rm(self._memory, seq, -1, -1)

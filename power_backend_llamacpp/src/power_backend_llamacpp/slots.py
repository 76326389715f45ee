"""The context's sequences, and the prompt cache their KV cells make between jobs.

A sequence keeps its last job's tokens (prompt and output) in the KV cache after the job
ends. The next job takes the free sequence whose tokens share the longest prefix with its
prompt and decodes only the rest: a chat resends its whole history every turn, and this is
what llama-server's and Ollama's slots do too. A job that shares nothing takes the sequence
freed longest ago, so recent conversations stay cached longest.
"""

from __future__ import annotations

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
    """Which sequence ids are free, least recently freed first, and the tokens each holds."""

    def __init__(self, memory: Any, n_parallel: int) -> None:
        self._memory = memory
        self._free: list[int] = list(range(n_parallel))
        #: the tokens in each free sequence's KV cells, from position 0
        self._held: dict[int, list[int]] = {}

    def free_count(self) -> int:
        return len(self._free)

    def take_for(self, prompt: list[int]) -> tuple[int, int]:
        """A free sequence for ``prompt``, and how many of its first tokens that sequence
        already holds (at most all but one: the last is decoded again for its logits)."""
        best, reused = self._free[0], 0
        for seq in self._free:
            shared = common_prefix(self._held.get(seq, []), prompt)
            if shared > reused:
                best, reused = seq, shared
        self._free.remove(best)
        reused = min(reused, len(prompt) - 1)
        held = self._held.pop(best, [])
        if reused > 0 and self._keep_only(best, reused):
            return best, reused
        if held:
            self._clear(best)
        return best, 0

    def take_empty(self) -> int:
        """The sequence freed longest ago, emptied (for the extra choices of ``n > 1``)."""
        seq = self._free.pop(0)
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
        self._free.append(seq)

    def forget_all(self) -> None:
        """Empty every free sequence (the engine is closing or its context is unusable)."""
        for seq in self._free:
            if self._held.pop(seq, None):
                self._clear(seq)

    def _keep_only(self, seq: int, n: int) -> bool:
        """Drop ``seq``'s cells from position ``n`` on; False if the cache cannot do it
        (recurrent models) or no longer holds the start (a sliding window dropped it)."""
        if not lc.llama_memory_seq_rm(self._memory, seq, n, -1):
            return False
        return int(lc.llama_memory_seq_pos_min(self._memory, seq)) == 0

    def _clear(self, seq: int) -> None:
        lc.llama_memory_seq_rm(self._memory, seq, -1, -1)

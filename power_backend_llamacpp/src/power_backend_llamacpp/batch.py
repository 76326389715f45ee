"""A reusable ``llama_batch`` whose arrays Python owns and fills without per-token allocation."""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp as lc


class BatchBuffer:
    """One ``llama_batch`` of up to ``capacity`` tokens, each in exactly one sequence.

    The arrays are ctypes arrays owned here (not ``llama_batch_init``'s), so sequence ids
    live in one contiguous array and a prompt chunk is written with slice assignments.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # typed Any: llama_cpp's annotations of these ctypes types are not accurate
        self.tokens: Any = (lc.llama_token * capacity)()
        self.positions: Any = (lc.llama_pos * capacity)()
        self.seq_ids: Any = (lc.llama_seq_id * capacity)()
        self.outputs: Any = (ctypes.c_int8 * capacity)()
        self._n_seq_id = (ctypes.c_int32 * capacity)(*([1] * capacity))
        seq_ptr = ctypes.POINTER(lc.llama_seq_id)
        base = ctypes.addressof(self.seq_ids)
        size = ctypes.sizeof(lc.llama_seq_id)
        self._seq_ptrs = (seq_ptr * capacity)(
            *(ctypes.cast(base + i * size, seq_ptr) for i in range(capacity))
        )
        self.batch: Any = lc.llama_batch(
            n_tokens=0,
            token=ctypes.cast(self.tokens, ctypes.POINTER(lc.llama_token)),
            embd=None,
            pos=ctypes.cast(self.positions, ctypes.POINTER(lc.llama_pos)),
            n_seq_id=ctypes.cast(self._n_seq_id, ctypes.POINTER(ctypes.c_int32)),
            seq_id=ctypes.cast(self._seq_ptrs, ctypes.POINTER(seq_ptr)),
            logits=ctypes.cast(self.outputs, ctypes.POINTER(ctypes.c_int8)),
        )
        self._outputs_addr = ctypes.addressof(self.outputs)

    def add_one(self, i: int, token: int, pos: int, seq: int) -> None:
        """Slot ``i``: ``token`` at ``pos`` of ``seq``, with its logits kept."""
        self.tokens[i] = token
        self.positions[i] = pos
        self.seq_ids[i] = seq
        self.outputs[i] = 1

    def add_run(self, i: int, tokens: list[int], start: int, seq: int, last_output: bool) -> None:
        """Slots ``i..``: ``tokens`` at positions ``start..`` of ``seq``; logits only for the
        last one, and only if ``last_output``."""
        n = len(tokens)
        self.tokens[i : i + n] = tokens
        self.positions[i : i + n] = range(start, start + n)
        self.seq_ids[i : i + n] = [seq] * n
        ctypes.memset(self._outputs_addr + i, 0, n)
        if last_output:
            self.outputs[i + n - 1] = 1

    def add_outputs_run(self, i: int, tokens: list[int], start: int, seq: int) -> None:
        """Slots ``i..``: ``tokens`` at positions ``start..`` of ``seq``, every one an output
        (as embeddings read them)."""
        self.add_run(i, tokens, start, seq, False)
        ctypes.memset(self._outputs_addr + i, 1, len(tokens))

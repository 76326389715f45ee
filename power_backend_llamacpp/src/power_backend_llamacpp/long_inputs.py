"""One embedding input longer than a group, read a chunk at a time.

A model whose attention is causal reads a sequence left to right, so a long input can be
decoded in chunks of :data:`~power_backend_llamacpp.embedding_contexts.GROUP_TOKENS` tokens, each a
task of its own on the engine thread (the model's streams take a step between two, and a
client that leaves stops the work between two), the earlier chunks' keys and values kept
in the context's cache. llama.cpp pools a sequence only within one micro-batch, so the
context here pools nothing: each chunk's token embeddings are summed (mean pooling), or the
first (CLS) or the last (LAST) one kept, here. Read whole, an input of 1,900 tokens was one
decode of seconds that every stream of the model waited for, and llama.cpp's output buffer
held a row of logits for each of its tokens (here, for the 256 of a chunk).

Long inputs are read one at a time, in the order they come, on one context grown as the
pooled one grows (:func:`~power_backend_llamacpp.embedding_contexts.grown_cells`): the
engine thread decodes one chunk at a time however many contexts there are, so a context
for each input read at once would take memory and save no time.

A model whose attention is not causal (BERT and the like) sees its input whole: it is not
read in chunks.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import llama_cpp as lc
import numpy as np

from power_backend_llamacpp.batch import BatchBuffer
from power_backend_llamacpp.embedding_contexts import embedding_context, grown_cells
from power_backend_llamacpp.lora import LoraAdapters
from power_core.concurrency import OneShot
from power_core.errors import BackendUnavailable, InvalidRequest, PowerError


def reads_in_chunks(pooled_ctx: Any, model: Any) -> bool:
    """Whether the model of ``pooled_ctx`` (an embedding context pooling as the model does)
    can read a long input in chunks."""
    return bool(lc.llama_get_causal_attn(pooled_ctx)) and not lc.llama_model_has_encoder(model)


@dataclass(eq=False)
class LongInput:
    """One input to read: how far it is read, and what its pooling keeps so far (the sum,
    or the first or the last row). ``ctx`` is the context while it is its turn."""

    tokens: list[int]
    pooling: int
    ctx: Any = None
    read: int = 0
    kept: Any = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.read >= len(self.tokens)


class ChunkReader:
    """Reads long inputs in chunks, one at a time; every method is a task of the engine
    thread."""

    def __init__(
        self,
        model: Any,
        *,
        chunk: int,
        n_ctx: int,
        n_threads: int,
        width: int,
        adapters: LoraAdapters,
    ) -> None:
        self._model = model
        self._n_ctx = n_ctx
        self._chunk = chunk
        self._n_threads = n_threads
        self._width = width
        self._adapters = adapters
        self._batch = BatchBuffer(chunk)
        self._ctx: Any = None
        self._cells = 0
        self._reading: LongInput | None = None
        self._waiting: deque[tuple[LongInput, OneShot[None]]] = deque()
        #: how many contexts were made (each at least twice the one before)
        self.contexts_made = 0

    @property
    def cells(self) -> int:
        """The cells of the context (0: none made, or freed)."""
        return self._cells

    def start(self, item: LongInput, turn: OneShot[None]) -> bool:
        """Give ``item`` the context (True), or queue it behind the input being read (False):
        ``turn`` is then set when the context is its, or failed if the model is unloaded."""
        if self._reading is not None:
            self._waiting.append((item, turn))
            return False
        self._hand_to(item)
        return True

    def read_chunk(self, item: LongInput) -> None:
        """Decode the next chunk of ``item`` and keep what its pooling needs of it.

        An embedding context makes every token an output, and llama.cpp then computes a
        row of logits for each (SmolLM2, a first chunk of 256: 209-220 ms, against 166-178
        ms with one output). So the chunks before the last of an input pooled by its last
        token are read as a prompt is, embeddings off (a 1,900-token input: 3.37-3.51 s
        against 3.65-3.75 s, the same vector), and an input pooled by its first token (CLS)
        is read no further than its first chunk: in a causal model nothing after a token
        changes it."""
        chunk = item.tokens[item.read : item.read + self._chunk]
        final = item.read + len(chunk) >= len(item.tokens)
        if item.pooling == lc.LLAMA_POOLING_TYPE_LAST and not final:
            self._fill_cache(item, chunk)
            return
        rows = self._decode(item, chunk)
        if item.pooling == lc.LLAMA_POOLING_TYPE_MEAN:
            total = rows.sum(axis=0, dtype=np.float64)
            item.kept = total if item.kept is None else item.kept + total
            item.read += len(chunk)
        elif item.pooling == lc.LLAMA_POOLING_TYPE_LAST:
            item.kept = rows[-1].astype(np.float64)
            item.read += len(chunk)
        else:  # CLS: the first token's, and the input is read
            item.kept = rows[0].astype(np.float64)
            item.read = len(item.tokens)

    def _decode(self, item: LongInput, chunk: list[int]) -> Any:
        """The token embeddings of ``chunk``, decoded next in ``item``'s context."""
        batch = self._batch
        batch.add_outputs_run(0, chunk, item.read, 0)
        batch.batch.n_tokens = len(chunk)
        status = lc.llama_decode(item.ctx, batch.batch)
        if status != 0:
            raise InvalidRequest(f"llama.cpp could not embed the input (status {status})")
        return np.ctypeslib.as_array(
            lc.llama_get_embeddings(item.ctx), shape=(len(chunk), self._width)
        )

    def _fill_cache(self, item: LongInput, chunk: list[int]) -> None:
        """Decode ``chunk`` into ``item``'s cache only (embeddings off, one output)."""
        batch = self._batch
        batch.add_run(0, chunk, item.read, 0, True)
        batch.batch.n_tokens = len(chunk)
        lc.llama_set_embeddings(item.ctx, False)
        try:
            status = lc.llama_decode(item.ctx, batch.batch)
        finally:
            lc.llama_set_embeddings(item.ctx, True)
        if status != 0:
            raise InvalidRequest(f"llama.cpp could not embed the input (status {status})")
        item.read += len(chunk)

    @staticmethod
    def pooled(item: LongInput) -> Any:
        """The pooled vector of ``item``, read to its end."""
        if item.pooling == lc.LLAMA_POOLING_TYPE_MEAN:
            return item.kept / len(item.tokens)
        return item.kept

    def give_back(self, item: LongInput) -> None:
        """``item`` is done with the context, or no longer waits for it (read, stopped, or
        its client gone): the next input in line gets it. Harmless twice."""
        if self._reading is not item:
            self._waiting = deque(entry for entry in self._waiting if entry[0] is not item)
            return
        item.ctx = None
        self._reading = None
        memory = lc.llama_get_memory(self._ctx)
        if memory:
            lc.llama_memory_clear(memory, False)
        while self._waiting:
            waiting, turn = self._waiting.popleft()
            try:
                self._hand_to(waiting)
            except PowerError as exc:  # no context for it: it hears why
                turn.set_error(exc)
                continue
            turn.set_result(None)
            return

    def close(self) -> None:
        """Free the context; the inputs waiting for it hear that the model is gone."""
        if self._ctx is not None:
            lc.llama_free(self._ctx)
            self._ctx, self._cells = None, 0
        self._reading = None
        waiting, self._waiting = self._waiting, deque()
        for _, turn in waiting:
            turn.set_error(BackendUnavailable("the model was unloaded"))

    def _hand_to(self, item: LongInput) -> None:
        cells = grown_cells(len(item.tokens), self._cells, self._n_ctx)
        if self._ctx is None or self._cells < cells:
            if self._ctx is not None:
                lc.llama_free(self._ctx)
                self._ctx, self._cells = None, 0
            self._ctx = self._new_context(cells)
            self._cells = cells
            self.contexts_made += 1
        item.ctx = self._ctx
        self._reading = item

    def _new_context(self, cells: int) -> Any:
        params = lc.llama_context_default_params()
        params.n_ctx = cells
        params.n_batch = self._chunk
        params.n_ubatch = self._chunk
        params.n_seq_max = 1
        params.pooling_type = lc.LLAMA_POOLING_TYPE_NONE
        return embedding_context(
            self._model, params, n_threads=self._n_threads, adapters=self._adapters
        )

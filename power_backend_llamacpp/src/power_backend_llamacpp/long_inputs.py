"""One embedding input longer than a group, read a chunk at a time.

A model whose attention is causal reads a sequence left to right, so a long input can be
decoded in chunks of :data:`~power_backend_llamacpp.embedding.GROUP_TOKENS` tokens, each a
task of its own on the engine thread (the model's streams take a step between two, and a
client that leaves stops the work between two), the earlier chunks' keys and values kept
in the context's cache. llama.cpp pools a sequence only within one micro-batch, so the
contexts here pool nothing: each chunk's token embeddings are summed (mean pooling), or the
first (CLS) or the last (LAST) one kept, here. Read whole, an input of 2,000 tokens was one
decode of seconds that every stream of the model waited for, and its output buffer held a
row of logits for each of its tokens.

A model whose attention is not causal (BERT and the like) sees its input whole: it is not
read in chunks.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import llama_cpp as lc
import numpy as np

from power_backend_llamacpp.batch import BatchBuffer
from power_backend_llamacpp.gpu_layers import pad_cells
from power_backend_llamacpp.lora import LoraAdapters
from power_core.errors import InvalidRequest, ModelLoadFailed

#: the poolings done here (the rest need a whole sequence in one micro-batch)
CHUNKED_POOLINGS = frozenset(
    {lc.LLAMA_POOLING_TYPE_MEAN, lc.LLAMA_POOLING_TYPE_CLS, lc.LLAMA_POOLING_TYPE_LAST}
)


def reads_in_chunks(pooled_ctx: Any, model: Any) -> bool:
    """Whether the model of ``pooled_ctx`` (an embedding context pooling as the model does)
    can read a long input in chunks."""
    return (
        bool(lc.llama_get_causal_attn(pooled_ctx))
        and not lc.llama_model_has_encoder(model)
        and int(lc.llama_pooling_type(pooled_ctx)) in CHUNKED_POOLINGS
    )


@dataclass
class LongInput:
    """One input being read: its context (``None`` once given back), how far it is read,
    and what its pooling keeps so far (the sum, or the first or the last row)."""

    tokens: list[int]
    pooling: int
    ctx: Any
    cells: int
    read: int = 0
    kept: Any = None

    @property
    def done(self) -> bool:
        return self.read >= len(self.tokens)


class ChunkReader:
    """Reads long inputs in chunks; used by the engine thread only (every method is one of
    its tasks). One context is kept between inputs, the largest made; an input that comes
    while another is read gets a context of its own, freed when it is done."""

    def __init__(
        self, model: Any, *, chunk: int, n_threads: int, width: int, adapters: LoraAdapters
    ) -> None:
        self._model = model
        self._chunk = chunk
        self._n_threads = n_threads
        self._width = width
        self._adapters = adapters
        self._batch = BatchBuffer(chunk)
        self._kept: tuple[Any, int] | None = None
        self._in_use: list[Any] = []

    def start(self, tokens: list[int], pooling: int) -> LongInput:
        """Take a context with room for ``tokens``."""
        cells = pad_cells(len(tokens))
        if self._kept is not None and self._kept[1] >= cells:
            ctx, cells = self._kept
            self._kept = None
        else:
            ctx = self._new_context(cells)
        self._in_use.append(ctx)
        return LongInput(tokens=tokens, pooling=pooling, ctx=ctx, cells=cells)

    def read_chunk(self, item: LongInput) -> None:
        """Decode the next chunk of ``item`` and keep what its pooling needs of it."""
        chunk = item.tokens[item.read : item.read + self._chunk]
        batch = self._batch
        batch.add_run(0, chunk, item.read, 0, True)
        ctypes.memset(ctypes.addressof(batch.outputs), 1, len(chunk))
        batch.batch.n_tokens = len(chunk)
        status = lc.llama_decode(item.ctx, batch.batch)
        if status != 0:
            raise InvalidRequest(f"llama.cpp could not embed the input (status {status})")
        rows = np.ctypeslib.as_array(
            lc.llama_get_embeddings(item.ctx), shape=(len(chunk), self._width)
        )
        if item.pooling == lc.LLAMA_POOLING_TYPE_MEAN:
            total = rows.sum(axis=0, dtype=np.float64)
            item.kept = total if item.kept is None else item.kept + total
        elif item.pooling == lc.LLAMA_POOLING_TYPE_LAST:
            item.kept = rows[-1].astype(np.float64)
        elif item.kept is None:  # CLS: the first token's
            item.kept = rows[0].astype(np.float64)
        item.read += len(chunk)

    def finish(self, item: LongInput) -> Any:
        """The pooled vector of ``item``, read to its end (its context given back)."""
        self.give_back(item)
        if item.pooling == lc.LLAMA_POOLING_TYPE_MEAN:
            return item.kept / len(item.tokens)
        return item.kept

    def give_back(self, item: LongInput) -> None:
        """Give ``item``'s context back (kept if it is the largest, else freed); once."""
        ctx, item.ctx = item.ctx, None
        if ctx is None or ctx not in self._in_use:  # given back, or freed by close()
            return
        self._in_use.remove(ctx)
        memory = lc.llama_get_memory(ctx)
        if memory:
            lc.llama_memory_clear(memory, False)
        if self._kept is None:
            self._kept = (ctx, item.cells)
        elif self._kept[1] < item.cells:
            lc.llama_free(self._kept[0])
            self._kept = (ctx, item.cells)
        else:
            lc.llama_free(ctx)

    def close(self) -> None:
        """Free every context, those of inputs still being read too."""
        contexts = [*self._in_use, *([self._kept[0]] if self._kept else [])]
        self._in_use, self._kept = [], None
        for ctx in contexts:
            lc.llama_free(ctx)

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


def embedding_context(model: Any, params: Any, *, n_threads: int, adapters: LoraAdapters) -> Any:
    """A context of ``model`` with ``params``, embeddings on, with the model's adapters."""
    params.embeddings = True
    params.n_threads = n_threads
    params.n_threads_batch = n_threads
    params.no_perf = True
    ctx = lc.llama_init_from_model(model, params)
    if not ctx:
        raise ModelLoadFailed("llama.cpp could not create an embedding context")
    try:
        adapters.apply(ctx)
    except ModelLoadFailed:
        lc.llama_free(ctx)
        raise
    return ctx

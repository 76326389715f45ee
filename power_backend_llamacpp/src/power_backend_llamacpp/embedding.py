"""Embeddings on a second context of the same model, created on first use.

The context is as large as the work it has seen, not the model's context: it starts with
the cells of one group (:data:`GROUP_TOKENS`) and is made again, at least twice as large,
when a longer input comes that the model reads whole (one whose attention is not causal; a
causal model reads a long input in chunks, :mod:`~power_backend_llamacpp.long_inputs`), up
to ``num_ctx``. Made at ``num_ctx`` at once, the first
embedding of a model loaded with a long context made a second KV cache of that length
(SmolLM2, ``num_ctx`` 32,768: 738 MiB more resident and 375 ms; made for the input, 11 MiB
and 27 ms)."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

import llama_cpp as lc
import numpy as np

from power_backend_llamacpp.batch import BatchBuffer
from power_backend_llamacpp.embedding_contexts import (
    GROUP_TOKENS,
    check_pooling,
    embedding_context,
    grown_cells,
)
from power_backend_llamacpp.long_inputs import ChunkReader, LongInput, reads_in_chunks
from power_backend_llamacpp.lora import LoraAdapters
from power_backend_llamacpp.vocab import Vocabulary
from power_core.concurrency import OneShot
from power_core.errors import Cancelled, ContextLengthExceeded, InvalidRequest, PowerError
from power_core.types import EmbeddingResult

#: sequences decoded together in one embedding batch
_MAX_SEQS = 16


def model_meta(model: Any, key: str) -> str | None:
    """A GGUF metadata value of ``model`` as text, or ``None`` when absent."""
    buf = ctypes.create_string_buffer(256)
    n = lc.llama_model_meta_val_str(model, key.encode(), buf, 256)
    if n < 0:
        return None
    if n >= 256:
        buf = ctypes.create_string_buffer(n + 1)
        lc.llama_model_meta_val_str(model, key.encode(), buf, n + 1)
    return buf.value.decode("utf-8", errors="replace")


class EmbeddingRunner:
    """Embeds texts with a context of its own (embeddings on), used by the engine thread only.

    Several inputs go into one decode, one sequence each. Pooling follows the model; a
    generative model without a pooling type is mean-pooled. Vectors are L2-normalised.
    Its context is used by the engine thread only: :meth:`embed` hands it each group.
    """

    def __init__(
        self, model: Any, vocab: Vocabulary, *, n_ctx: int, n_threads: int, adapters: LoraAdapters
    ) -> None:
        self._model = model
        self._adapters = adapters
        self._vocab = vocab
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._ctx: Any = None
        self._cells = 0
        self._batch: BatchBuffer | None = None
        #: the floats of a vector
        self._width = int(lc.llama_model_n_embd_out(model))
        self._chunks = ChunkReader(
            model,
            chunk=GROUP_TOKENS,
            n_ctx=n_ctx,
            n_threads=n_threads,
            width=self._width,
            adapters=adapters,
        )
        #: how a long input is pooled when read in chunks; ``None``: it is read whole
        #: (:mod:`~power_backend_llamacpp.long_inputs`); unknown before the first context
        self._chunk_pooling: int | None = None
        self._chunks_known = False

    @property
    def cells(self) -> int:
        """The cells of the context made so far (0 before the first embedding)."""
        return self._cells

    def _context(self, tokens: int) -> Any:
        """The context, with room for a decode of ``tokens`` tokens."""
        cells = grown_cells(tokens, self._cells, self._n_ctx)
        if self._ctx is None or cells != self._cells:
            self._free_context()
            arch = model_meta(self._model, "general.architecture") or ""
            params = lc.llama_context_default_params()
            params.n_ctx = cells
            params.n_batch = cells
            # non-causal (encoder) models must see a whole sequence in one micro-batch
            params.n_ubatch = cells
            params.n_seq_max = _MAX_SEQS
            params.kv_unified = True
            if model_meta(self._model, f"{arch}.pooling_type") is None:
                params.pooling_type = lc.LLAMA_POOLING_TYPE_MEAN
            ctx = embedding_context(
                self._model, params, n_threads=self._n_threads, adapters=self._adapters
            )
            try:
                pooling = check_pooling(ctx)
            except InvalidRequest:
                lc.llama_free(ctx)
                raise
            self._ctx = ctx
            self._cells = cells
            self._batch = BatchBuffer(cells)
            if not self._chunks_known:
                self._chunks_known = True
                if reads_in_chunks(ctx, self._model):
                    self._chunk_pooling = pooling
        return self._ctx

    def embed(
        self,
        inputs: list[str | list[int]],
        *,
        truncate: bool,
        run: Callable[[Callable[[], Any]], Any] = lambda task: task(),
        cancelled: Callable[[], bool] | None = None,
    ) -> EmbeddingResult:
        """Embed ``inputs``: ``run`` runs each task on the thread that owns the contexts,
        first the tokenizing of them all (so an input too long is refused before any
        work), then each group's decode, or each chunk of an input longer than a group;
        ``cancelled()``, asked between two, stops the work with :class:`Cancelled`."""
        started = time.perf_counter_ns()
        if not inputs:
            raise InvalidRequest("no input to embed", param="input")
        sequences: list[list[int]] = run(lambda: [self._tokens(item, truncate) for item in inputs])
        pooled: list[tuple[list[float], float]] = []
        for group in _groups(sequences):
            if cancelled is not None and cancelled():
                raise Cancelled("the client closed the connection")
            if len(group[0]) > GROUP_TOKENS and run(self._long_pooling) is not None:
                pooled.append(self._read_in_chunks(group[0], run, cancelled))
            else:
                pooled.extend(run(functools.partial(self._decode_group, group)))
        return EmbeddingResult(
            vectors=[vector for vector, _ in pooled],
            prompt_tokens=sum(len(tokens) for tokens in sequences),
            total_ns=time.perf_counter_ns() - started,
            norms=[norm for _, norm in pooled],
        )

    def _decode_group(self, group: list[list[int]]) -> list[tuple[list[float], float]]:
        return self._decode(self._context(sum(len(tokens) for tokens in group)), group)

    def _long_pooling(self) -> int | None:
        """How a long input is pooled when read in chunks (``None``: it is read whole)."""
        if not self._chunks_known:
            self._context(1)
        return self._chunk_pooling

    def _read_in_chunks(
        self,
        tokens: list[int],
        run: Callable[[Callable[[], Any]], Any],
        cancelled: Callable[[], bool] | None,
    ) -> tuple[list[float], float]:
        assert self._chunk_pooling is not None
        chunks = self._chunks
        item = LongInput(tokens, self._chunk_pooling)
        turn: OneShot[None] = OneShot()  # made here: it wakes this thread or greenlet
        try:
            if not run(functools.partial(chunks.start, item, turn)):
                turn.wait()  # another long input is read first
                if cancelled is not None and cancelled():
                    raise Cancelled("the client closed the connection")
            while not item.done:
                run(functools.partial(chunks.read_chunk, item))
                if not item.done and cancelled is not None and cancelled():
                    raise Cancelled("the client closed the connection")
            return unit_vector(chunks.pooled(item))
        finally:
            # read, stopped or interrupted: the context goes to the next input in line
            with contextlib.suppress(PowerError):
                run(functools.partial(chunks.give_back, item))

    def _tokens(self, item: str | list[int], truncate: bool) -> list[int]:
        vocab = self._vocab
        if isinstance(item, str):
            tokens = vocab.tokenize(item, add_special=True)
        else:
            vocab.check_tokens(item, param="input")
            tokens = list(item)
        if not tokens:
            if vocab.bos < 0:
                raise InvalidRequest("cannot embed an empty input", param="input")
            tokens = [vocab.bos]
        if len(tokens) > self._n_ctx:
            if not truncate:
                raise ContextLengthExceeded(
                    f"an input has {len(tokens)} tokens but the context holds {self._n_ctx}; "
                    "shorten it or allow truncation",
                    param="input",
                )
            tokens = tokens[: self._n_ctx]
        return tokens

    def _decode(self, ctx: Any, group: list[list[int]]) -> list[tuple[list[float], float]]:
        """Each sequence's pooled vector, L2-normalised, and the length it had."""
        batch = self._batch
        assert batch is not None
        n = 0
        for seq, tokens in enumerate(group):
            batch.add_outputs_run(n, tokens, 0, seq)  # pooling reads every token
            n += len(tokens)
        batch.batch.n_tokens = n
        memory = lc.llama_get_memory(ctx)
        try:
            status = lc.llama_decode(ctx, batch.batch)
            if status != 0:
                raise InvalidRequest(f"llama.cpp could not embed the input (status {status})")
            vectors = []
            for seq in range(len(group)):
                row = lc.llama_get_embeddings_seq(ctx, seq)
                if not row:
                    raise InvalidRequest("llama.cpp gave no pooled vector for an input")
                vectors.append(
                    unit_vector(np.ctypeslib.as_array(row, shape=(self._width,)).astype(np.float64))
                )
            return vectors
        finally:
            if memory:
                # the cells only: zeroing the cache's data too wrote all of it after every
                # decode (SmolLM2, a 10-token input: 85 ms at 32,768 cells against 11 ms)
                lc.llama_memory_clear(memory, False)

    def _free_context(self) -> None:
        if self._ctx is not None:
            lc.llama_free(self._ctx)
            self._ctx = None
            self._cells = 0

    def close(self) -> None:
        """Free the contexts (on the engine thread, after its last task)."""
        self._free_context()
        self._chunks.close()


def unit_vector(vector: Any) -> tuple[list[float], float]:
    """``vector`` (float64) scaled to length 1, and the length it had."""
    norm = float(np.linalg.norm(vector))
    if norm > 0.0:
        vector = vector / norm
    return vector.tolist(), norm


def _groups(sequences: list[list[int]]) -> Iterator[list[list[int]]]:
    """Consecutive sequences, as many together as fit :data:`GROUP_TOKENS` (one at least)
    and :data:`_MAX_SEQS`."""
    group: list[list[int]] = []
    used = 0
    for tokens in sequences:
        if group and (used + len(tokens) > GROUP_TOKENS or len(group) == _MAX_SEQS):
            yield group
            group, used = [], 0
        group.append(tokens)
        used += len(tokens)
    if group:
        yield group

"""The llama.cpp contexts that embeddings run on, and the poolings they may use."""

from __future__ import annotations

from typing import Any

import llama_cpp as lc

from power_backend_llamacpp.gpu_layers import pad_cells
from power_backend_llamacpp.lora import LoraAdapters
from power_core.errors import InvalidRequest, ModelLoadFailed

#: the poolings that give one vector an input (the model's own, or the mean where it
#: declares none): what a model declaring none gives per token, and a ranking model's
#: scores, are not embeddings
EMBEDDING_POOLINGS = frozenset(
    {lc.LLAMA_POOLING_TYPE_MEAN, lc.LLAMA_POOLING_TYPE_CLS, lc.LLAMA_POOLING_TYPE_LAST}
)

#: the tokens one embedding decode reads at most (a longer input alone: in chunks of this
#: many by a causal model, whole by another): each decode is a task of its own on the
#: engine thread, so the model's streams take a step between two of them rather than wait
#: for a whole request's inputs. 100 inputs (11,790 tokens) beside a stream, 2 cores (ad
#: hoc): its worst pause 10.1-10.4 s as one task, 0.48 s in groups of 512, 0.23-0.27 s in
#: groups of 256 (``python -m bench embed_beside``)
GROUP_TOKENS = 256


def grown_cells(needed: int, current: int, n_ctx: int) -> int:
    """The cells of a context to make for a decode of ``needed`` tokens where the one made
    has ``current`` (0: none yet): unchanged while ``needed`` fits, else at least twice as
    many (so a series of longer inputs makes few contexts), never beyond what an input of
    ``n_ctx`` tokens or a group needs. Always a whole number of llama.cpp's KV pads: a
    batch of another size (``num_ctx`` 1000, 100, 17) failed a ``GGML_ASSERT`` in the
    pooled graph and aborted the process."""
    if 0 < needed <= current:
        return current
    limit = pad_cells(max(n_ctx, GROUP_TOKENS))
    return min(max(pad_cells(max(needed, GROUP_TOKENS)), 2 * current), limit)


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


def check_pooling(ctx: Any) -> int:
    """The pooling of ``ctx``, refused unless it gives one vector an input."""
    pooling = int(lc.llama_pooling_type(ctx))
    if pooling == lc.LLAMA_POOLING_TYPE_RANK:
        raise InvalidRequest("this model ranks documents; it does not produce embeddings")
    if pooling not in EMBEDDING_POOLINGS:
        raise InvalidRequest("this model does not produce pooled embeddings")
    return pooling

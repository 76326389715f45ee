"""The llama.cpp contexts that embeddings run on, and the poolings they may use."""

from __future__ import annotations

from typing import Any

import llama_cpp as lc

from power_backend_llamacpp.lora import LoraAdapters
from power_core.errors import InvalidRequest, ModelLoadFailed

#: the poolings that give one vector an input (the model's own, or the mean where it
#: declares none): what a model declaring none gives per token, and a ranking model's
#: scores, are not embeddings
EMBEDDING_POOLINGS = frozenset(
    {lc.LLAMA_POOLING_TYPE_MEAN, lc.LLAMA_POOLING_TYPE_CLS, lc.LLAMA_POOLING_TYPE_LAST}
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


def check_pooling(ctx: Any) -> int:
    """The pooling of ``ctx``, refused unless it gives one vector an input."""
    pooling = int(lc.llama_pooling_type(ctx))
    if pooling == lc.LLAMA_POOLING_TYPE_RANK:
        raise InvalidRequest("this model ranks documents; it does not produce embeddings")
    if pooling not in EMBEDDING_POOLINGS:
        raise InvalidRequest("this model does not produce pooled embeddings")
    return pooling

"""The in-process embedding baseline: llama-cpp-python's ``Llama.embed``.

A child process (``python -m bench.inprocess_embed``) loads the model once with embeddings
on, mean-pooled (as ours pools a generative model) and a batch as large as the context (as
ours reads a long input whole), and answers ``{"inputs": [...]}`` lines with the seconds
``embed`` took, timed inside the child: no HTTP, no IPC in the span.
"""

from __future__ import annotations

import json
import sys
import time

from bench.inprocess import Worker, follow_extra_buffers
from bench.servers import BenchConfig, worker_parser


class InProcessEmbedder(Worker):
    """The embedding worker for ``config`` (its ``num_ctx`` is the context)."""

    label = "in-process Llama.embed"

    def __init__(self, config: BenchConfig) -> None:
        super().__init__(config, "bench.inprocess_embed")

    def embed(self, inputs: list[str]) -> float:
        """Seconds ``Llama.embed(inputs)`` took."""
        return float(self.ask({"inputs": inputs})["elapsed"])


def _serve() -> None:
    args = worker_parser("python -m bench.inprocess_embed").parse_args()
    follow_extra_buffers(args)
    import llama_cpp
    from llama_cpp import Llama

    llm = Llama(
        args.model,
        embedding=True,
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
        n_ctx=args.num_ctx,
        n_batch=args.num_ctx,
        n_ubatch=args.num_ctx,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        inputs = json.loads(line)["inputs"]
        start = time.perf_counter()
        vectors = llm.embed(inputs, normalize=True)
        elapsed = time.perf_counter() - start
        if len(vectors) != len(inputs):
            raise RuntimeError(f"{len(inputs)} inputs gave {len(vectors)} vectors")
        print(json.dumps({"elapsed": elapsed}), flush=True)


if __name__ == "__main__":
    _serve()

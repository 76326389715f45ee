"""The in-process baseline: llama-cpp-python's ``Llama.create_completion(stream=True)``.

It runs in a child process (``python -m bench.inprocess``) that loads the model once and
answers one JSON line per request on stdin/stdout, so it can be interleaved with the HTTP
servers repetition by repetition, and its threads never share a process with the client.
Timing happens inside the child: there is no HTTP, no IPC in the measured span.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from bench.clients import StreamResult
from bench.report import REPO_ROOT
from bench.servers import BenchConfig, worker_parser


class Worker:
    """A child ``python -m module`` that loads the model once and answers one JSON line per
    JSON line it is sent."""

    label = "in-process"

    def __init__(self, config: BenchConfig, module: str) -> None:
        self.process = subprocess.Popen(
            config.worker_command(module),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
        )
        ready = self._read()
        if ready.get("ready") is not True:
            raise RuntimeError(f"{module} failed to start: {ready}")

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.label} worker exited")
        result: dict[str, Any] = json.loads(line)
        return result

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


class InProcessBaseline(Worker):
    """The generation worker; :meth:`generate` returns the same result type as HTTP."""

    def __init__(self, config: BenchConfig) -> None:
        super().__init__(config, "bench.inprocess")

    def generate(self, prompt: str, max_tokens: int) -> StreamResult:
        """One greedy streamed completion, timed inside the worker."""
        reply = self.ask({"prompt": prompt, "max_tokens": max_tokens})
        return StreamResult(
            ok=True,
            error=None,
            start=0.0,
            first=reply["ttft"],
            end=reply["elapsed"],
            tokens=reply["tokens"],
            chunks=reply["tokens"],
            finish_reason=reply["finish_reason"],
            text=reply["text"],
        )


def follow_extra_buffers(args: argparse.Namespace) -> None:
    """Make llama-cpp-python load without llama.cpp's extra CPU buffers where ours does."""
    import llama_cpp.llama_cpp as native

    if not args.extra_buffers:
        # llama-cpp-python has no switch for this; our backend turns the buffers off where
        # its llama.cpp failed the AMX trial, so the baseline must run the same way
        default_params = native.llama_model_default_params

        def without_extra_buffers() -> Any:
            params = default_params()
            params.use_extra_bufts = False
            return params

        native.llama_model_default_params = without_extra_buffers


def _serve(args: argparse.Namespace) -> None:
    follow_extra_buffers(args)
    from llama_cpp import Llama

    llm = Llama(
        args.model,
        n_ctx=args.num_ctx,
        n_batch=args.num_batch,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        start = time.perf_counter()
        first = None
        tokens = 0
        finish = None
        pieces = []
        chunks: Any = llm.create_completion(
            request["prompt"],
            max_tokens=request["max_tokens"],
            temperature=0.0,
            repeat_penalty=1.0,
            stream=True,
        )
        for chunk in chunks:
            choice = chunk["choices"][0]
            if choice["finish_reason"] is not None:
                finish = choice["finish_reason"]
            text = choice["text"]
            if text:
                if first is None:
                    first = time.perf_counter()
                pieces.append(text)
            if choice["finish_reason"] is None:
                tokens += 1
        end = time.perf_counter()
        # A run that hit max_tokens generated exactly that many; chunks can hold more
        # than one token when a character spans tokens, so they are only the fallback.
        if finish == "length":
            tokens = request["max_tokens"]
        print(
            json.dumps(
                {
                    "ttft": (first if first is not None else end) - start,
                    "elapsed": end - start,
                    "tokens": tokens,
                    "finish_reason": finish,
                    "text": "".join(pieces),
                }
            ),
            flush=True,
        )


def main() -> None:
    _serve(worker_parser("python -m bench.inprocess").parse_args())


if __name__ == "__main__":
    main()

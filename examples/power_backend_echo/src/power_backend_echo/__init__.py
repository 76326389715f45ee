"""An example A3S Power backend: it "generates" by echoing the prompt's last line, a word at
a time. It is the plugin that plugins.md builds step by step; it loads no real model."""

from __future__ import annotations

import time

from power_core.concurrency import EventChannel, start_native_thread
from power_core.engine import CompletionJob, EngineInfo, LoadSpec
from power_core.hookspecs import hookimpl
from power_core.types import (
    ChoiceDone,
    EmbeddingResult,
    EngineEvent,
    GenerationDone,
    TextDelta,
    Usage,
)


class EchoEngine:
    """Streams back the last line of the prompt, one word per step, on its own thread."""

    def __init__(self, spec: LoadSpec) -> None:
        self.info = EngineInfo(
            context_length=spec.options.num_ctx, embedding_length=8, vocab_size=256, size_bytes=0
        )
        self._active = 0

    def submit(self, job: CompletionJob) -> EventChannel[EngineEvent]:
        text = job.prompt if isinstance(job.prompt, str) else " ".join(map(str, job.prompt))
        words = text.strip().splitlines()[-1].split() if text.strip() else []
        if job.max_tokens is not None and job.max_tokens >= 0:
            words = words[: job.max_tokens]
        channel: EventChannel[EngineEvent] = EventChannel(on_cancel=lambda: None)
        self._active += 1

        def run() -> None:
            started = time.perf_counter_ns()
            sent = 0
            for word in words:
                if channel.cancelled:
                    break
                channel.put(TextDelta(choice=0, text=("" if sent == 0 else " ") + word))
                sent += 1
            reason = "cancelled" if channel.cancelled else "stop"
            channel.put(ChoiceDone(choice=0, reason=reason, completion_tokens=sent))
            usage = Usage(
                prompt_tokens=len(text.split()),
                completion_tokens=sent,
                eval_ns=time.perf_counter_ns() - started,
            )
            channel.put(GenerationDone(usage=usage, reason=reason))
            self._active -= 1
            channel.close()

        start_native_thread(run, "echo-engine")
        return channel

    def embed(self, inputs: list[str | list[int]], *, truncate: bool) -> EmbeddingResult:
        vectors = []
        for item in inputs:
            counts = [0.0] * 8
            for byte in str(item).encode():
                counts[byte % 8] += 1.0
            norm = sum(c * c for c in counts) ** 0.5 or 1.0
            vectors.append([c / norm for c in counts])
        return EmbeddingResult(vectors=vectors, prompt_tokens=sum(len(str(i)) for i in inputs))

    def tokenize(self, text: str, *, add_bos: bool = False) -> list[int]:
        return list(text.encode())

    def detokenize(self, tokens: list[int]) -> str:
        return bytes(tokens).decode(errors="replace")

    def active_jobs(self) -> int:
        return self._active

    def close(self) -> None:
        pass


class EchoBackend:
    """Claims GGUF files, so any imported model can be served by it."""

    name = "echo"

    def supports(self, model_format: str) -> bool:
        return model_format == "gguf"

    def load(self, spec: LoadSpec) -> EchoEngine:
        return EchoEngine(spec)


@hookimpl
def register_backends(register):  # type: ignore[no-untyped-def]
    register(EchoBackend())

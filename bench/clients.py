"""Streaming HTTP clients: one stream, many at once, one after another, and a latency probe.

Times come from ``time.perf_counter``. Time to first token is taken at the first chunk that
carries generated text (not the HTTP headers, not an empty role chunk). Streams are read
with :class:`bench.lean_http.LeanClient` unless ``--client httpx`` chose ``httpx`` (what
the OpenAI and Ollama SDKs use, at about twice the CPU per token).
"""

from __future__ import annotations

import json
import math
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from bench.lean_http import LeanClient, LeanHTTPError

#: no single stream in these benchmarks may take longer than this (bounded loops)
STREAM_TIMEOUT = 300.0

#: what reads the streams: "lean" (:class:`LeanClient`) or "httpx"
CLIENT_KINDS = ("lean", "httpx")
_client_kind = "lean"

StreamClient = LeanClient | httpx.Client


def use_client(kind: str) -> None:
    """Read every stream from now on with ``kind`` (one of :data:`CLIENT_KINDS`)."""
    global _client_kind
    if kind not in CLIENT_KINDS:
        raise ValueError(f"unknown client {kind!r}")
    _client_kind = kind


def client_kind() -> str:
    return _client_kind


def new_client() -> StreamClient:
    """A keep-alive client of the chosen kind, for one thread."""
    return LeanClient() if _client_kind == "lean" else httpx.Client()


@dataclass(frozen=True)
class Target:
    """Where to send a completion and which wire format to speak."""

    label: str
    url: str
    #: "ollama" (``/api/generate``, NDJSON) or "openai" (``/v1/completions``, SSE)
    api: str
    model: str


@dataclass
class StreamResult:
    """One streamed generation, timed at the client."""

    ok: bool
    error: str | None
    start: float
    first: float
    end: float
    tokens: int
    chunks: int
    finish_reason: str | None
    text: str = ""
    #: CPU the rest of the machine used meanwhile, in cores (see bench.noise)
    others_cores: float = math.nan
    #: when each chunk with text arrived (``perf_counter``); not in :meth:`sample`
    arrivals: list[float] = field(default_factory=list)

    @property
    def ttft(self) -> float:
        return self.first - self.start

    @property
    def elapsed(self) -> float:
        return self.end - self.start

    @property
    def tokens_per_s(self) -> float:
        """End to end: generated tokens over the whole request (prompt included)."""
        return self.tokens / self.elapsed if self.ok and self.elapsed > 0 else math.nan

    @property
    def decode_tokens_per_s(self) -> float:
        """Tokens after the first over the time after the first (decode only)."""
        span = self.end - self.first
        return (self.tokens - 1) / span if self.ok and span > 0 and self.tokens > 1 else math.nan

    def sample(self) -> dict[str, Any]:
        """The raw sample for the JSON results (text cut short)."""
        data = asdict(self)
        data.pop("arrivals")
        data["text"] = self.text[:80]
        data.update(
            ttft=self.ttft,
            elapsed=self.elapsed,
            tokens_per_s=self.tokens_per_s,
            decode_tokens_per_s=self.decode_tokens_per_s,
        )
        return data


def _body(target: Target, prompt: str, max_tokens: int) -> tuple[str, dict[str, Any]]:
    if target.api == "ollama":
        return "/api/generate", {
            "model": target.model,
            "prompt": prompt,
            "raw": True,
            "stream": True,
            "options": {"num_predict": max_tokens, "temperature": 0, "repeat_penalty": 1.0},
        }
    return "/v1/completions", {
        "model": target.model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "stream": True,
        "temperature": 0,
        "repeat_penalty": 1.0,
        "stream_options": {"include_usage": True},
    }


def _response_lines(client: StreamClient, url: str, body: dict[str, Any]) -> Iterator[str]:
    """POST ``body`` and yield the lines of a 200 response as they arrive."""
    if isinstance(client, LeanClient):
        response = client.post_lines(url, body, STREAM_TIMEOUT)
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {response.text()[:200]}")
        yield from response.lines()
        return
    with client.stream("POST", url, json=body, timeout=STREAM_TIMEOUT) as resp:
        if resp.status_code != 200:
            resp.read()
            raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")
        yield from resp.iter_lines()


def stream(target: Target, prompt: str, max_tokens: int, client: StreamClient) -> StreamResult:
    """One greedy streamed completion of ``max_tokens`` tokens; never raises for HTTP trouble."""
    path, body = _body(target, prompt, max_tokens)
    start = time.perf_counter()
    first = math.nan
    chunks = 0
    reported: int | None = None
    finish: str | None = None
    pieces: list[str] = []
    arrivals: list[float] = []
    try:
        for line in _response_lines(client, target.url + path, body):
            if target.api == "ollama":
                if not line:
                    continue
                event = json.loads(line)
                text = event.get("response", "")
                if event.get("done"):
                    reported = event.get("eval_count")
                    finish = event.get("done_reason")
            else:
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    continue  # read to the end, so the connection can be reused
                event = json.loads(data)
                if event.get("usage"):
                    reported = event["usage"].get("completion_tokens")
                choices = event.get("choices") or []
                text = choices[0].get("text", "") if choices else ""
                if choices and choices[0].get("finish_reason"):
                    finish = choices[0]["finish_reason"]
            if text:
                arrivals.append(time.perf_counter())
                if chunks == 0:
                    first = arrivals[0]
                chunks += 1
                pieces.append(text)
        end = time.perf_counter()
    except (httpx.HTTPError, LeanHTTPError, OSError, RuntimeError, ValueError) as exc:
        end = time.perf_counter()
        return StreamResult(
            False,
            f"{type(exc).__name__}: {exc}",
            start,
            first,
            end,
            chunks,
            chunks,
            finish,
            "".join(pieces),
        )
    if chunks == 0:
        return StreamResult(False, "no content", start, end, end, 0, 0, finish)
    tokens = reported if reported else (max_tokens if finish == "length" else chunks)
    return StreamResult(
        True, None, start, first, end, tokens, chunks, finish, "".join(pieces), arrivals=arrivals
    )


@dataclass
class Batch:
    """Several generations measured together from one start time ``t0``."""

    mode: str
    t0: float
    results: list[StreamResult] = field(default_factory=list)
    others_cores: float = math.nan

    @property
    def ok(self) -> int:
        return sum(1 for r in self.results if r.ok)

    @property
    def wall(self) -> float:
        return max(r.end for r in self.results) - self.t0 if self.results else math.nan

    @property
    def aggregate_tokens_per_s(self) -> float:
        tokens = sum(r.tokens for r in self.results if r.ok)
        return tokens / self.wall if self.wall > 0 and tokens else math.nan

    @property
    def ttfts(self) -> list[float]:
        """Time to first token as each client saw it, all clients having asked at ``t0``."""
        return [r.first - self.t0 if r.ok else math.nan for r in self.results]

    @property
    def worst_ttft(self) -> float:
        return max(self.ttfts) if self.ok == len(self.results) else math.inf

    @property
    def median_ttft(self) -> float:
        values = [t for t in self.ttfts if not math.isnan(t)]
        return statistics.median(values) if values else math.nan

    def sample(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "clients": len(self.results),
            "ok": self.ok,
            "wall": self.wall,
            "others_cores": self.others_cores,
            "aggregate_tokens_per_s": self.aggregate_tokens_per_s,
            "median_ttft": self.median_ttft,
            "worst_ttft": self.worst_ttft,
            "ttfts": self.ttfts,
            "streams": [r.sample() for r in self.results],
        }


def run_simultaneous(
    target: Target, prompts: Sequence[str], max_tokens: int | Sequence[int]
) -> Batch:
    """One client thread per prompt, all released at once; waits for every stream.
    ``max_tokens``: for every client, or one number per client."""
    clients = [new_client() for _ in prompts]
    results: list[StreamResult | None] = [None] * len(prompts)
    barrier = threading.Barrier(len(prompts) + 1)
    lengths = [max_tokens] * len(prompts) if isinstance(max_tokens, int) else list(max_tokens)
    if len(lengths) != len(prompts):
        raise ValueError(f"{len(lengths)} lengths for {len(prompts)} prompts")

    def work(index: int) -> None:
        barrier.wait()
        results[index] = stream(target, prompts[index], lengths[index], clients[index])

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    barrier.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join(STREAM_TIMEOUT + 30)
    for client in clients:
        client.close()
    batch = Batch("simultaneous", t0)
    for result in results:
        batch.results.append(
            result
            or StreamResult(
                False, "client thread did not finish", t0, math.nan, time.perf_counter(), 0, 0, None
            )
        )
    return batch


def run_sequential(target: Target, prompts: Sequence[str], max_tokens: int) -> Batch:
    """The same requests one after another, as if all had arrived at the first one's start
    (what a server that serves one request at a time gives its clients)."""
    client = new_client()
    try:
        results = [stream(target, prompt, max_tokens, client) for prompt in prompts]
    finally:
        client.close()
    batch = Batch("sequential", results[0].start if results else time.perf_counter())
    batch.results = results
    return batch


class LatencyProbe:
    """GETs each path in turn from one thread until stopped, recording every latency."""

    def __init__(
        self,
        base_url: str,
        paths: Sequence[str],
        interval: float = 0.01,
        max_samples: int = 20000,
        timeout: float = 60.0,
    ) -> None:
        self.base_url = base_url
        self.paths = list(paths)
        self.interval = interval
        self.max_samples = max_samples
        self.timeout = timeout
        self.samples: dict[str, list[float]] = {p: [] for p in self.paths}
        self.errors: dict[str, int] = {p: 0 for p in self.paths}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client() as client:
            taken = 0
            while not self._stop.is_set() and taken < self.max_samples:
                for path in self.paths:
                    start = time.perf_counter()
                    try:
                        response = client.get(self.base_url + path, timeout=self.timeout)
                        response.read()
                        ok = response.status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    latency = time.perf_counter() - start
                    if ok:
                        self.samples[path].append(latency)
                    else:
                        self.errors[path] += 1
                    taken += 1
                self._stop.wait(self.interval)

    def start(self) -> LatencyProbe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 5)

    def run_for(self, seconds: float) -> LatencyProbe:
        """Probe for ``seconds`` (e.g. an idle baseline) and stop."""
        self.start()
        time.sleep(seconds)
        self.stop()
        return self

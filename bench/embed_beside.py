"""17. A long list of inputs, or one long input, is embedded by the model a stream is
generating with: how long the stream pauses, and how fast the inputs are embedded.

Our engine reads embeddings a group of at most 256 tokens at a time, each group a task of
its own on the model's engine thread, so the stream takes a decode step between two groups
(``power_backend_llamacpp.embedding``), and an input longer than that a chunk of 256 tokens
at a time (``power_backend_llamacpp.long_inputs``); read as one task, the stream waited for
all of them. Baseline, same server, same round: the stream's median gap between two tokens
outside the embedding. Figures: its worst gap while the inputs are embedded, that gap over
the usual one, and the embedding's tokens per second. A round counts only if the stream
ran all through the embedding.
"""

from __future__ import annotations

import itertools
import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx

from bench.clients import STREAM_TIMEOUT, StreamResult, Target, new_client, stream
from bench.fleet import Fleet, quiet_pause
from bench.noise import quiet_summary
from bench.peers import OURS
from bench.report import num, save_result, table
from bench.servers import MODEL_NAME
from bench.stats import Summary
from bench.workload import concurrent_prompts

NAME = "embed_beside"
STREAM_TOKENS = 600
#: seconds after the stream starts that the inputs are sent
ARRIVAL_DELAY = 0.5
#: 100 inputs of about 120 tokens (11,990 with SmolLM2's tokenizer)
INPUTS = 100
SENTENCE = "the river runs past the old mill "
#: the tokens of the one long input (the run's context is 2,048)
LONG_INPUT_TOKENS = 1900
REPEATS = 16
#: story openings no other benchmark of a run sends (see workload.concurrent_prompts)
SERIES = 60


def inputs(rep: int) -> list[str]:
    return [f"Note {rep}-{i}: " + SENTENCE * REPEATS for i in range(INPUTS)]


def long_input(rep: int) -> list[str]:
    """One input of about :data:`LONG_INPUT_TOKENS` tokens."""
    return [f"Note {rep}: " + SENTENCE * (LONG_INPUT_TOKENS // 7)]


@dataclass
class Beside:
    """One round: the stream, and the embedding request's start, end and tokens."""

    runner: StreamResult
    start: float
    end: float
    tokens: int
    error: str | None = None
    others_cores: float = math.nan

    @property
    def ok(self) -> bool:
        arrivals = self.runner.arrivals
        return (
            self.error is None
            and self.runner.ok
            and bool(arrivals)
            and arrivals[0] < self.start
            and arrivals[-1] > self.end
        )

    def _gaps(self, during: bool) -> list[float]:
        arrivals = self.runner.arrivals
        return [
            b - a
            for a, b in itertools.pairwise(arrivals)
            if (b > self.start and a < self.end) == during
        ]

    @property
    def worst_gap(self) -> float:
        gaps = self._gaps(during=True)
        return max(gaps) if self.ok and gaps else math.nan

    @property
    def usual_gap(self) -> float:
        gaps = self._gaps(during=False)
        return statistics.median(gaps) if self.ok and gaps else math.nan

    @property
    def stall(self) -> float:
        return self.worst_gap / self.usual_gap if self.usual_gap > 0 else math.nan

    @property
    def embed_tokens_per_s(self) -> float:
        return self.tokens / (self.end - self.start) if self.ok else math.nan

    def sample(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "error": self.error,
            "others_cores": self.others_cores,
            "worst_gap": self.worst_gap,
            "usual_gap": self.usual_gap,
            "embed_seconds": self.end - self.start,
            "embed_tokens": self.tokens,
            "runner": self.runner.sample(),
        }


def run_beside(target: Target, prompt: str, texts: list[str], stream_tokens: int) -> Beside:
    """Start a stream of ``stream_tokens``; :data:`ARRIVAL_DELAY` later embed ``texts`` on
    the same model."""
    streamed: list[StreamResult] = []

    def generate() -> None:
        client = new_client()
        try:
            streamed.append(stream(target, prompt, stream_tokens, client))
        finally:
            client.close()

    runner = threading.Thread(target=generate, daemon=True)
    runner.start()
    time.sleep(ARRIVAL_DELAY)
    start = time.perf_counter()
    error, tokens = None, 0
    try:
        reply = httpx.post(
            target.url + "/api/embed",
            json={"model": target.model, "input": texts},
            timeout=STREAM_TIMEOUT,
        )
        reply.raise_for_status()
        tokens = int(reply.json()["prompt_eval_count"])
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    end = time.perf_counter()
    runner.join(STREAM_TIMEOUT + 60)
    if not streamed:
        failed = StreamResult(False, "the stream did not finish", 0, math.nan, 0, 0, 0, None)
        return Beside(failed, start, end, tokens, error or "no stream")
    return Beside(streamed[0], start, end, tokens, error)


@dataclass(frozen=True)
class Case:
    """What is embedded beside the stream: each round's inputs, and the stream's length
    (long enough to run all through the embedding)."""

    key: str
    title: str
    inputs: Callable[[int], list[str]]
    stream_tokens: int


CASES = (
    Case(OURS, f"{INPUTS} inputs", inputs, STREAM_TOKENS),
    Case(f"{OURS}, one long input", f"1 input of ~{LONG_INPUT_TOKENS} tokens", long_input, 1500),
)


def measure(fleet: Fleet, case: Case, reps: int) -> dict[str, Any]:
    target = Target(OURS, fleet.power().url, "openai", MODEL_NAME)
    rounds: list[Beside] = []
    for rep in range(reps):
        [prompt] = concurrent_prompts(1, rep, SERIES)
        quiet_pause(fleet)
        work = partial(run_beside, target, prompt, case.inputs(rep), case.stream_tokens)
        beside, others = fleet.meter.measure(work)
        beside.others_cores = others
        rounds.append(beside)
        print(
            f"  {case.title}, rep {rep + 1}/{reps}: stream's worst gap "
            f"{beside.worst_gap * 1000:.0f} ms (usual {beside.usual_gap * 1000:.1f}), "
            f"{beside.tokens} tokens embedded in {(beside.end - beside.start):.2f} s "
            f"({beside.error or 'ok'}; others {others:.2f} cores)",
            flush=True,
        )
    worst, basis = quiet_summary(rounds, lambda b: b.worst_gap)
    usual, _ = quiet_summary(rounds, lambda b: b.usual_gap)
    stall, _ = quiet_summary(rounds, lambda b: b.stall)
    rate, _ = quiet_summary(rounds, lambda b: b.embed_tokens_per_s)
    return {
        "what": case.title,
        "worst_gap_s": worst.as_dict(),
        "worst_gap_basis": basis,
        "usual_gap_s": usual.as_dict(),
        "worst_over_usual_gap": stall.as_dict(),
        "embed_tokens_per_s": rate.as_dict(),
        "failed_rounds": sum(1 for b in rounds if not b.ok),
        "rounds": [b.sample() for b in rounds],
    }


def run(fleet: Fleet) -> dict[str, Any]:
    reps = fleet.config.repetitions(full=3, quick=1)
    print(
        f"== embed_beside: a stream, and {' or '.join(case.title for case in CASES)} embedded "
        f"{ARRIVAL_DELAY} s after it starts, same model, {reps} reps",
        flush=True,
    )
    summary = {case.key: measure(fleet, case, reps) for case in CASES}
    print(
        table(
            f"Inputs embedded beside a stream on the same model, median (min-max) of {reps}",
            [
                "embedded",
                "stream's worst gap, ms",
                "usual gap, ms",
                "worst / usual",
                "embedded tokens/s",
                "failed rounds",
            ],
            [
                [
                    figures["what"],
                    f"{Summary(**figures['worst_gap_s']).spread(0, 1000)} "
                    f"[{figures['worst_gap_basis']}]",
                    Summary(**figures["usual_gap_s"]).spread(1, 1000),
                    Summary(**figures["worst_over_usual_gap"]).spread(1),
                    Summary(**figures["embed_tokens_per_s"]).spread(0),
                    figures["failed_rounds"],
                ]
                for figures in summary.values()
            ],
        ),
        flush=True,
    )
    return save_result(
        NAME,
        summary,
        fleet=fleet.describe(),
        reps=reps,
        stream_tokens={case.key: case.stream_tokens for case in CASES},
        inputs=INPUTS,
        long_input_tokens=LONG_INPUT_TOKENS,
        arrival_delay_s=ARRIVAL_DELAY,
    )


def headline(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for key, what in ((OURS, f"{INPUTS} inputs"), (CASES[1].key, "one long input")):
        ours = result["results"].get(key) or {}
        stall = ours.get("worst_over_usual_gap")
        if stall:
            figure = f"stream's worst gap / usual gap, {what}"
            rows.append([NAME, figure, num(stall["median"], 1), "-", "info"])
        worst = ours.get("worst_gap_s")
        if worst:
            figure = f"stream's worst gap while embedding {what}"
            rows.append([NAME, figure, f"{worst['median'] * 1000:.0f} ms", "-", "info"])
    return rows

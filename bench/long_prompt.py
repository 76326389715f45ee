"""13. A long prompt arrives while 4 streams run: how long the running streams pause while
it is read, and how soon its own first token comes; on ours and on llama-server, each with
flash attention off and on.

Every step that reads part of a prompt is a pause in the running streams as long as that
step. llama-server reads an arriving prompt beside its running slots in batches of up to
``-b`` tokens (2,048 by default); ours fills each step up to a quarter of a batch while
sequences generate (128 tokens in all of the default 512,
``power_backend_llamacpp.prompt_chunks``).
Baseline, same server, same round: the running streams' median gap between two tokens
outside the new prompt's reading. Figures: their worst gap while it is read; their total
pause then (their gaps less the usual gap: short steps or long, reading the prompt costs
them about this long); and its time to first token (from its request); each against
llama-server's in the same round. A round counts only if every running stream ran all
through the reading.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from bench.clients import (
    STREAM_TIMEOUT,
    Batch,
    StreamResult,
    Target,
    new_client,
    run_simultaneous,
    stream,
)
from bench.fleet import Fleet, quiet_pause
from bench.noise import paired_summary, quiet_summary
from bench.peers import BAR, OURS, flash_attention_pairs
from bench.report import num, paired_info_row, save_result, table
from bench.stats import Summary
from bench.workload import concurrent_prompts, rotated

NAME = "long_prompt"
RUNNERS = 4
RUNNER_TOKENS = 256
#: seconds after the running streams start that the long prompt is sent
ARRIVAL_DELAY = 0.5
NEWCOMER_TOKENS = 8
#: 13 tokens with SmolLM2's tokenizer; repeated to a prompt of 1,816 (:data:`PROMPT_TOKENS`)
PARAGRAPH = "The history of the old harbour city is long and varied. "
REPEATS = 150
#: the prompt's length with SmolLM2's tokenizer (the default model), for the tables
PROMPT_TOKENS = 1816
#: story openings no other benchmark of a run sends (see workload.concurrent_prompts)
SERIES = 50


def long_prompt(rep: int) -> str:
    """A prompt of :data:`PROMPT_TOKENS` tokens that no earlier request of the run starts with."""
    return f"Record {SERIES}{rep:02d}. " + PARAGRAPH * REPEATS + "\nIn one sentence, the city is"


@dataclass
class Arrival:
    """One round: the running streams and the stream of the prompt that arrived."""

    runners: list[StreamResult]
    newcomer: StreamResult
    others_cores: float = math.nan

    @property
    def valid(self) -> bool:
        """Every running stream had its first token before the new prompt was sent and its
        last after the new prompt's first: they ran all through its reading."""
        start, end = self.newcomer.start, self.newcomer.first
        return all(
            r.arrivals and r.arrivals[0] < start and r.arrivals[-1] > end for r in self.runners
        )

    @property
    def ok(self) -> bool:
        return self.newcomer.ok and all(r.ok for r in self.runners) and self.valid

    @property
    def ttft(self) -> float:
        """The new prompt's time to first token, from its request."""
        return self.newcomer.ttft if self.ok else math.nan

    def runner_gaps(self, during: bool) -> list[list[float]]:
        """Each running stream's gaps between two tokens that overlap the new prompt's
        reading (from its request to its first token), or that do not."""
        start, end = self.newcomer.start, self.newcomer.first
        return [
            [
                b - a
                for a, b in zip(runner.arrivals, runner.arrivals[1:], strict=False)
                if (b > start and a < end) == during
            ]
            for runner in self.runners
        ]

    @property
    def worst_gap(self) -> float:
        gaps = [gap for gaps in self.runner_gaps(during=True) for gap in gaps]
        return max(gaps) if self.ok and gaps else math.nan

    @property
    def usual_gap(self) -> float:
        gaps = [gap for gaps in self.runner_gaps(during=False) for gap in gaps]
        return statistics.median(gaps) if self.ok and gaps else math.nan

    @property
    def total_pause(self) -> float:
        """What a running stream lost while the prompt was read: its gaps then, less its
        usual gap for each of them (median over the running streams). Short steps or long
        ones, reading the prompt takes about this long; they spread it differently."""
        if not self.ok:
            return math.nan
        usual = self.usual_gap
        return statistics.median(
            sum(gaps) - usual * len(gaps) for gaps in self.runner_gaps(during=True)
        )

    @property
    def stall(self) -> float:
        """The worst gap over the usual one."""
        return self.worst_gap / self.usual_gap if self.usual_gap > 0 else math.nan

    def sample(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "valid": self.valid,
            "others_cores": self.others_cores,
            "ttft": self.ttft,
            "worst_gap": self.worst_gap,
            "usual_gap": self.usual_gap,
            "total_pause": self.total_pause,
            "gaps_during_by_runner": self.runner_gaps(during=True),
            "runners": [r.sample() for r in self.runners],
            "newcomer": self.newcomer.sample(),
        }


def run_arrival(target: Target, runner_prompts: list[str], prompt: str) -> Arrival:
    """Start the running streams together; :data:`ARRIVAL_DELAY` later send ``prompt``."""
    running: list[Batch] = []
    runners = threading.Thread(
        target=lambda: running.append(run_simultaneous(target, runner_prompts, RUNNER_TOKENS)),
        daemon=True,
    )
    runners.start()
    time.sleep(ARRIVAL_DELAY)
    client = new_client()
    try:
        newcomer = stream(target, prompt, NEWCOMER_TOKENS, client)
    finally:
        client.close()
    runners.join(STREAM_TIMEOUT + 60)
    if not running:
        failed = StreamResult(False, "runners did not finish", 0, math.nan, 0, 0, 0, None)
        return Arrival([failed], newcomer)
    return Arrival(running[0].results, newcomer)


def run(fleet: Fleet) -> dict[str, Any]:
    reps = fleet.config.repetitions(full=3, quick=1)
    print(
        f"== long_prompt: {RUNNERS} streams of {RUNNER_TOKENS} tokens, a prompt of "
        f"{PROMPT_TOKENS} tokens arriving after {ARRIVAL_DELAY} s, {reps} reps",
        flush=True,
    )
    targets = flash_attention_pairs(fleet)
    samples: dict[str, list[Arrival]] = {t.label: [] for t in targets}
    for rep in range(reps):
        runner_prompts = concurrent_prompts(RUNNERS, rep, SERIES)
        for t in rotated(targets, rep):
            quiet_pause(fleet)
            arrival, others = fleet.meter.measure(
                partial(run_arrival, t, runner_prompts, long_prompt(rep))
            )
            arrival.others_cores = others
            samples[t.label].append(arrival)
            print(
                f"  rep {rep + 1}/{reps} {t.label}: runners' worst gap "
                f"{arrival.worst_gap * 1000:.0f} ms (usual {arrival.usual_gap * 1000:.0f}), "
                f"new prompt's TTFT {arrival.ttft * 1000:.0f} ms "
                f"({arrival.newcomer.tokens} tokens; others {others:.2f} cores)",
                flush=True,
            )
    bar = samples.get(BAR, [])
    summary: dict[str, Any] = {}
    rows = []
    for label, arrivals in samples.items():
        worst, basis = quiet_summary(arrivals, lambda a: a.worst_gap)
        usual, _ = quiet_summary(arrivals, lambda a: a.usual_gap)
        ttft, _ = quiet_summary(arrivals, lambda a: a.ttft)
        stall, _ = quiet_summary(arrivals, lambda a: a.stall)
        pause, _ = quiet_summary(arrivals, lambda a: a.total_pause)
        pause_vs = paired_summary(arrivals, bar, lambda a: a.total_pause) if bar else None
        gap_vs = paired_summary(arrivals, bar, lambda a: a.worst_gap) if bar else None
        ttft_vs = paired_summary(arrivals, bar, lambda a: a.ttft) if bar else None
        summary[label] = {
            "worst_gap_s": worst.as_dict(),
            "usual_gap_s": usual.as_dict(),
            "ttft_s": ttft.as_dict(),
            "worst_over_usual_gap": stall.as_dict(),
            "total_pause_s": pause.as_dict(),
            "total_pause_vs_llama_server": pause_vs,
            "worst_gap_vs_llama_server": gap_vs,
            "ttft_vs_llama_server": ttft_vs,
            "failed_rounds": sum(1 for a in arrivals if not a.ok),
            "rounds": [a.sample() for a in arrivals],
        }
        rows.append(
            [
                label,
                f"{worst.spread(0, 1000)} [{basis}]",
                usual.spread(0, 1000),
                stall.spread(1),
                pause.spread(0, 1000),
                f"{Summary(**pause_vs['ratio']).spread(2)}" if pause_vs else "n/a",
                ttft.spread(0, 1000),
                f"{Summary(**gap_vs['ratio']).spread(2)} [{gap_vs['basis']}]" if gap_vs else "n/a",
                f"{Summary(**ttft_vs['ratio']).spread(2)}" if ttft_vs else "n/a",
                summary[label]["failed_rounds"],
            ]
        )
    print(
        table(
            f"A long prompt ({PROMPT_TOKENS} tokens) arrives while {RUNNERS} streams run, "
            f"ms, median (min-max) of {reps}",
            [
                "server",
                "runners' worst gap",
                "usual gap",
                "worst / usual",
                "runners' total pause",
                "total pause / llama-server",
                "new prompt's TTFT",
                "worst gap / llama-server",
                "TTFT / llama-server",
                "failed rounds",
            ],
            rows,
        ),
        flush=True,
    )
    return save_result(
        NAME,
        summary,
        fleet=fleet.describe(),
        reps=reps,
        runners=RUNNERS,
        runner_tokens=RUNNER_TOKENS,
        arrival_delay_s=ARRIVAL_DELAY,
    )


def headline(result: dict[str, Any]) -> list[list[str]]:
    ours = result["results"].get(OURS) or {}
    rows = []
    for key, what in (
        ("worst_gap_vs_llama_server", "running streams' worst gap"),
        ("total_pause_vs_llama_server", "running streams' total pause"),
        ("ttft_vs_llama_server", "new prompt's TTFT"),
    ):
        versus = ours.get(key)
        if versus:
            rows.append(paired_info_row(NAME, f"{what} / llama-server (its defaults)", versus))
    stall = ours.get("worst_over_usual_gap")
    if stall:
        rows.append([NAME, "ours: worst / usual gap", num(stall["median"], 1), "-", "info"])
    return rows

"""3. Concurrency: N simultaneous streaming clients against the same N requests served one
after another (what a one-request-at-a-time server such as ``llama_cpp.server`` gives).

For each level: aggregate tokens/s, median and worst time to first token (every client
asks at the same instant ``t0``). The sequential run is measured on our own server, one
request after another, with each client's TTFT counted from the first request's start.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from bench.clients import Batch, Target, run_sequential, run_simultaneous
from bench.fleet import Fleet, quiet_pause
from bench.noise import paired_summary, quiet_summary
from bench.report import check, num, save_result, table
from bench.servers import MODEL_NAME
from bench.stats import Summary
from bench.workload import CONCURRENT_TOKENS, concurrent_prompts

NAME = "concurrency"
LEVELS = [1, 2, 4, 8, 16]
QUICK_LEVELS = [1, 8]
#: at 8 clients: worst TTFT under this share of the one-after-another worst TTFT
TARGET_TTFT_SHARE = 0.25


def _describe(batches: list[Batch]) -> dict[str, Any]:
    return {
        "aggregate_tokens_per_s": Summary.of([b.aggregate_tokens_per_s for b in batches]).as_dict(),
        "median_ttft_s": Summary.of([b.median_ttft for b in batches]).as_dict(),
        "worst_ttft_s": Summary.of([b.worst_ttft for b in batches]).as_dict(),
        "others_cores": [b.others_cores for b in batches],
        "failed_streams": sum(len(b.results) - b.ok for b in batches),
        "samples": [b.sample() for b in batches],
    }


def run(fleet: Fleet) -> dict[str, Any]:
    config = fleet.config
    reps = config.repetitions(full=3, quick=1)
    levels = QUICK_LEVELS if config.quick else LEVELS
    print(
        f"== concurrency: levels {levels}, {CONCURRENT_TOKENS} tokens each, {reps} reps", flush=True
    )
    power = fleet.power()
    target = Target("a3s-power /api/generate", power.url, "ollama", MODEL_NAME)
    run_simultaneous(target, concurrent_prompts(2, rep=99, series=8), 8)  # warm-up
    together: dict[int, list[Batch]] = {n: [] for n in levels}
    apart: dict[int, list[Batch]] = {n: [] for n in levels}
    for rep in range(reps):
        for level, n in enumerate(levels):
            # alternate which mode goes first, so neither always follows the other
            order = ["together", "apart"] if rep % 2 == 0 else ["apart", "together"]
            for mode in order:
                # every level and mode its own prompts: none cached by an earlier one
                series = 2 * level + (mode == "apart")
                prompts = concurrent_prompts(n, rep, series)
                quiet_pause(fleet)
                runner = run_simultaneous if mode == "together" else run_sequential
                batch, others = fleet.meter.measure(
                    partial(runner, target, prompts, CONCURRENT_TOKENS)
                )
                batch.others_cores = others
                (together if mode == "together" else apart)[n].append(batch)
                print(
                    f"  rep {rep + 1}/{reps} {n} clients {mode}: "
                    f"{batch.aggregate_tokens_per_s:.1f} tok/s, worst TTFT "
                    f"{batch.worst_ttft:.2f} s, {len(batch.results) - batch.ok} failed "
                    f"(others {others:.2f} cores)",
                    flush=True,
                )
    single = quiet_summary(together[levels[0]], lambda b: b.aggregate_tokens_per_s)[0].median
    summary: dict[str, Any] = {}
    rows = []
    for n in levels:
        conc, seq = _describe(together[n]), _describe(apart[n])
        shares = paired_summary(together[n], apart[n], lambda b: b.worst_ttft)
        scalings = paired_summary(
            together[n], together[levels[0]], lambda b: b.aggregate_tokens_per_s
        )
        share, scaling = Summary(**shares["ratio"]), Summary(**scalings["ratio"])
        summary[str(n)] = {
            "simultaneous": conc,
            "sequential": seq,
            "worst_ttft_share_of_sequential": shares,
            "aggregate_over_single_stream": scalings,
        }
        rows.append(
            [
                n,
                Summary(**conc["aggregate_tokens_per_s"]).spread(1),
                Summary(**seq["aggregate_tokens_per_s"]).spread(1),
                f"{scaling.spread(2)} [{scalings['basis']}]",
                Summary(**conc["median_ttft_s"]).spread(2),
                Summary(**conc["worst_ttft_s"]).spread(2),
                Summary(**seq["worst_ttft_s"]).spread(2),
                f"{share.spread(2)} [{shares['basis']}]",
                conc["failed_streams"],
            ]
        )
    print(
        table(
            f"Concurrency through /api/generate, {CONCURRENT_TOKENS} tokens per client, "
            f"median (min-max) of {reps}",
            [
                "clients",
                "aggregate tok/s",
                "one-after-another tok/s",
                "aggregate / 1 stream",
                "median TTFT s",
                "worst TTFT s",
                "one-after-another worst TTFT s",
                "worst TTFT share",
                "failed",
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
        levels=levels,
        max_tokens=CONCURRENT_TOKENS,
        api="/api/generate",
        single_stream_tokens_per_s=single,
    )


def headline(result: dict[str, Any]) -> list[list[str]]:
    eight = result["results"].get("8")
    if eight is None:
        return []
    shares = eight["worst_ttft_share_of_sequential"]
    scalings = eight["aggregate_over_single_stream"]
    share, scaling = shares["ratio"]["median"], scalings["ratio"]["median"]
    worst = eight["simultaneous"]["worst_ttft_s"]["median"]
    return [
        [
            "concurrency",
            f"8 clients: worst TTFT / one-after-another worst TTFT [{shares['basis']}]",
            f"{num(share)} ({num(worst)} s)",
            f"< {TARGET_TTFT_SHARE}",
            check(share, lambda v: v < TARGET_TTFT_SHARE),
        ],
        [
            "concurrency",
            f"8 clients: aggregate tok/s / 1 stream [{scalings['basis']}]",
            num(scaling),
            ">= 1.0",
            check(scaling, lambda v: v >= 1.0),
        ],
    ]

"""4. Staying responsive: ``GET /api/tags`` and ``GET /v1/models`` latency while 8
generations stream, against the same server idle and against ``llama-server``'s
``/v1/models`` under the same load (when it is available).
"""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

from bench.clients import Batch, LatencyProbe, Target, run_simultaneous
from bench.fleet import Fleet, quiet_pause
from bench.noise import is_quiet
from bench.report import check, num, save_result, table
from bench.servers import MODEL_NAME
from bench.stats import Summary
from bench.workload import concurrent_prompts

NAME = "responsive"
STREAMS = 8
STREAM_TOKENS = 256
IDLE_SECONDS = 3.0
#: seconds
TARGET_P99 = 0.050


def probe_under_load(
    target: Target, paths: list[str], rep: int, streams: int = STREAMS, tokens: int = STREAM_TOKENS
) -> tuple[LatencyProbe, Batch]:
    """Latencies of ``paths`` sampled while ``streams`` generations stream from ``target``."""
    holder: list[Batch] = []
    prompts = concurrent_prompts(streams, rep, series=10)  # none cached by another benchmark
    load = threading.Thread(
        target=lambda: holder.append(run_simultaneous(target, prompts, tokens)), daemon=True
    )
    probe = LatencyProbe(target.url, paths)
    load.start()
    probe.start()
    load.join()
    probe.stop()
    return probe, holder[0]


def run(fleet: Fleet) -> dict[str, Any]:
    config = fleet.config
    reps = config.repetitions(full=2, quick=1)
    print(f"== responsive: {STREAMS} streams of {STREAM_TOKENS} tokens, {reps} reps", flush=True)
    power = fleet.power()
    servers: list[tuple[str, Target, list[str]]] = [
        (
            "a3s-power",
            Target("a3s-power", power.url, "ollama", MODEL_NAME),
            ["/api/tags", "/v1/models"],
        ),
    ]
    llama = fleet.llama_server()
    if llama is not None:
        servers.append(
            (
                "llama-server",
                Target("llama-server", llama.url, "openai", MODEL_NAME),
                ["/v1/models"],
            )
        )
    idle: dict[str, dict[str, list[float]]] = {}
    reps_taken: dict[str, list[tuple[float, LatencyProbe, Batch]]] = {}
    for label, target, paths in servers:
        quiet_pause(fleet)
        probe = LatencyProbe(target.url, paths).run_for(IDLE_SECONDS)
        idle[label] = probe.samples
        reps_taken[label] = []
    for rep in range(reps):
        for label, target, paths in servers:
            quiet_pause(fleet)
            (probe, batch), others = fleet.meter.measure(
                partial(probe_under_load, target, paths, rep)
            )
            batch.others_cores = others
            reps_taken[label].append((others, probe, batch))
            p99 = {p: Summary.of(probe.samples[p]).p99 * 1000 for p in paths}
            print(
                f"  rep {rep + 1}/{reps} {label}: "
                + ", ".join(f"{p} p99 {v:.1f} ms" for p, v in p99.items())
                + f", {batch.aggregate_tokens_per_s:.1f} tok/s under probe "
                f"(others {others:.2f} cores)",
                flush=True,
            )
    # pool the reps that ran on a quiet machine when there are any, else all of them
    loaded: dict[str, dict[str, list[float]]] = {}
    errors: dict[str, dict[str, int]] = {}
    loads: dict[str, list[dict[str, Any]]] = {}
    basis: dict[str, str] = {}
    for label, _target, paths in servers:
        taken = reps_taken[label]
        quiet_reps = [t for t in taken if is_quiet(t[0])]
        basis[label] = "quiet" if quiet_reps else "all"
        pooled = quiet_reps or taken
        loaded[label] = {p: [x for t in pooled for x in t[1].samples[p]] for p in paths}
        errors[label] = {p: sum(t[1].errors[p] for t in taken) for p in paths}
        loads[label] = [t[2].sample() for t in taken]
    summary: dict[str, Any] = {}
    rows = []
    bar = None
    if "llama-server" in loaded:
        bar = Summary.of(loaded["llama-server"]["/v1/models"]).p99
    for label, _target, paths in servers:
        summary[label] = {}
        for path in paths:
            busy, quiet = Summary.of(loaded[label][path]), Summary.of(idle[label][path])
            summary[label][path] = {
                "idle_s": quiet.as_dict(),
                "under_load_s": busy.as_dict(),
                "errors": errors[label][path],
                "idle_samples": idle[label][path],
                "under_load_samples": loaded[label][path],
            }
            rows.append(
                [
                    label,
                    path,
                    f"{busy.n} [{basis[label]}]",
                    f"{quiet.median * 1000:.1f}",
                    f"{quiet.p99 * 1000:.1f}",
                    f"{busy.median * 1000:.1f}",
                    f"{busy.p99 * 1000:.1f}",
                    f"{busy.max * 1000:.1f}",
                    f"{busy.p99 / bar:.2f}" if bar else "n/a",
                    errors[label][path],
                    check(busy.p99, lambda v: v < TARGET_P99),
                ]
            )
        summary[label]["load"] = loads[label]
        summary[label]["basis"] = basis[label]
    print(
        table(
            f"Latency while {STREAMS} generations stream ({reps} reps pooled), ms",
            [
                "server",
                "path",
                "samples",
                "idle p50",
                "idle p99",
                "loaded p50",
                "loaded p99",
                "loaded max",
                "p99 / llama-server p99",
                "errors",
                "p99 < 50 ms",
            ],
            rows,
        ),
        flush=True,
    )
    return save_result(
        NAME, summary, fleet=fleet.describe(), reps=reps, streams=STREAMS, max_tokens=STREAM_TOKENS
    )


def headline(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    ours = result["results"].get("a3s-power", {})
    for path in ("/api/tags", "/v1/models"):
        if path not in ours:
            continue
        p99 = ours[path]["under_load_s"]["p99"]
        ms = None if p99 is None else p99 * 1000
        rows.append(
            [
                "responsive",
                f"{path} p99 during {STREAMS} streams [{ours['basis']}]",
                num(ms, 1, " ms"),
                "< 50 ms",
                check(ms, lambda v: v < TARGET_P99 * 1000),
            ]
        )
    return rows

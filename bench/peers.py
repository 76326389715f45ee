"""5. Peers: single stream and 8 simultaneous clients against ``llama_cpp.server`` and
llama.cpp's ``llama-server``, with ours, in the same run and the same rotating order.

Every server gets the same model, threads, per-sequence context and raw ``/v1/completions``
requests; the in-process baseline runs alongside so each figure is also tied to it.
During each 8-client run a probe times ``GET /v1/models`` on the server under load.
"""

from __future__ import annotations

from typing import Any

from bench.clients import Batch, LatencyProbe, StreamResult, Target, run_simultaneous
from bench.decode import measure_single
from bench.report import check, cleaned, machine_facts, num, table, write_result
from bench.servers import MODEL_NAME, Fleet, quiet_pause
from bench.stats import Summary, paired_ratios
from bench.workload import CONCURRENT_TOKENS, DECODE_TOKENS, concurrent_prompts, rotated

NAME = "peers"
CLIENTS = 8
OURS = "a3s-power"
BAR = "llama-server"


def _targets(fleet: Fleet) -> list[Target]:
    targets = [Target(OURS, fleet.power().url, "openai", MODEL_NAME)]
    lcpp = fleet.lcpp()
    if lcpp is not None:
        targets.append(Target("llama_cpp.server", lcpp.url, "openai", MODEL_NAME))
    llama = fleet.llama_server()
    if llama is not None:
        targets.append(Target(BAR, llama.url, "openai", MODEL_NAME))
    return targets


def _many(
    targets: list[Target], reps: int
) -> tuple[dict[str, list[Batch]], dict[str, list[float]]]:
    batches: dict[str, list[Batch]] = {t.label: [] for t in targets}
    probes: dict[str, list[float]] = {t.label: [] for t in targets}
    prompts = concurrent_prompts(CLIENTS)
    for t in targets:
        run_simultaneous(t, prompts[:1], 8)  # warm-up
    for rep in range(reps):
        for t in rotated(targets, rep):
            quiet_pause()
            probe = LatencyProbe(t.url, ["/v1/models"], interval=0.05).start()
            batch = run_simultaneous(t, prompts, CONCURRENT_TOKENS)
            probe.stop()
            batches[t.label].append(batch)
            probes[t.label].extend(probe.samples["/v1/models"])
            print(
                f"  rep {rep + 1}/{reps} {t.label} x{CLIENTS}: "
                f"{batch.aggregate_tokens_per_s:.1f} tok/s, worst TTFT {batch.worst_ttft:.2f} s, "
                f"{len(batch.results) - batch.ok} failed",
                flush=True,
            )
    return batches, probes


def run(fleet: Fleet) -> dict[str, Any]:
    config = fleet.config
    reps = config.repetitions(full=3, quick=1)
    print(
        f"== peers: single {DECODE_TOKENS} tokens and {CLIENTS} clients x "
        f"{CONCURRENT_TOKENS} tokens, {reps} reps",
        flush=True,
    )
    targets = _targets(fleet)
    single = measure_single(fleet, targets, reps)
    batches, probes = _many(targets, reps)
    labels = [t.label for t in targets]
    base = [r.tokens_per_s for r in single["in-process"]]
    bar_single = [r.tokens_per_s for r in single.get(BAR, [])]
    bar_batches = batches.get(BAR, [])
    summary: dict[str, Any] = {"in-process": _single("in-process", single, base, bar_single)}
    rows = [["in-process", Summary.of(base).spread(1), "-", "-", "-", "-", "-", "-"]]
    for label in labels:
        mine = batches[label]
        entry = _single(label, single, base, bar_single)
        aggregate = Summary.of([b.aggregate_tokens_per_s for b in mine])
        worst = Summary.of([b.worst_ttft for b in mine])
        agg_ratio = Summary.of(
            paired_ratios(
                [b.aggregate_tokens_per_s for b in mine],
                [b.aggregate_tokens_per_s for b in bar_batches],
            )
        )
        ttft_ratio = Summary.of(
            paired_ratios([b.worst_ttft for b in mine], [b.worst_ttft for b in bar_batches])
        )
        models = Summary.of(probes[label])
        entry.update(
            {
                "clients": CLIENTS,
                "aggregate_tokens_per_s": aggregate.as_dict(),
                "median_ttft_s": Summary.of([b.median_ttft for b in mine]).as_dict(),
                "worst_ttft_s": worst.as_dict(),
                "aggregate_ratio_to_llama_server": agg_ratio.as_dict(),
                "worst_ttft_ratio_to_llama_server": ttft_ratio.as_dict(),
                "failed_streams": sum(len(b.results) - b.ok for b in mine),
                "v1_models_under_load_s": models.as_dict(),
                "v1_models_samples": probes[label],
                "batches": [b.sample() for b in mine],
            }
        )
        summary[label] = entry
        rows.append(
            [
                label,
                Summary(**entry["tokens_per_s"]).spread(1),
                Summary(**entry["single_ratio_to_llama_server"]).spread(2),
                aggregate.spread(1),
                agg_ratio.spread(2),
                worst.spread(2),
                f"{entry['failed_streams']}",
                f"{models.p99 * 1000:.0f}",
            ]
        )
    print(
        table(
            f"Peers, same model and {config.threads} threads, /v1/completions, "
            f"median (min-max) of {reps}",
            [
                "server",
                "single tok/s",
                "single / llama-server",
                f"{CLIENTS}-client tok/s",
                "aggregate / llama-server",
                "worst TTFT s",
                "failed streams",
                "/v1/models p99 ms",
            ],
            rows,
        ),
        flush=True,
    )
    result = {
        "benchmark": NAME,
        "machine": machine_facts(),
        "fleet": fleet.describe(),
        "reps": reps,
        "single_tokens": DECODE_TOKENS,
        "clients": CLIENTS,
        "client_tokens": CONCURRENT_TOKENS,
        "results": summary,
    }
    print(f"  wrote {write_result(NAME, result)}", flush=True)
    return dict(cleaned(result))


def _single(
    label: str, single: dict[str, list[StreamResult]], base: list[float], bar: list[float]
) -> dict[str, Any]:
    rates = [r.tokens_per_s for r in single[label]]
    return {
        "tokens_per_s": Summary.of(rates).as_dict(),
        "single_ratio_to_in_process": Summary.of(paired_ratios(rates, base)).as_dict(),
        "single_ratio_to_llama_server": Summary.of(paired_ratios(rates, bar)).as_dict(),
        "single_samples": [r.sample() for r in single[label]],
    }


def headline(result: dict[str, Any]) -> list[list[str]]:
    ours = result["results"].get(OURS)
    if ours is None:
        return []
    if BAR not in result["results"]:
        return [["peers", "llama-server", "not available", "-", "n/a"]]
    single = ours["single_ratio_to_llama_server"]["median"]
    aggregate = ours["aggregate_ratio_to_llama_server"]["median"]
    ttft = ours["worst_ttft_ratio_to_llama_server"]["median"]
    return [
        [
            "peers",
            "single stream tok/s / llama-server",
            num(single),
            ">= 1.0",
            check(single, lambda v: v >= 1.0),
        ],
        [
            "peers",
            f"{CLIENTS}-client aggregate tok/s / llama-server",
            num(aggregate),
            ">= 1.0",
            check(aggregate, lambda v: v >= 1.0),
        ],
        [
            "peers",
            f"{CLIENTS}-client worst TTFT / llama-server",
            num(ttft),
            "<= 1.0",
            check(ttft, lambda v: v <= 1.0),
        ],
    ]

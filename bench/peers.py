"""5. Peers: single stream and 8 simultaneous clients against ``llama_cpp.server`` and
llama.cpp's ``llama-server``, with ours, in the same run and the same rotating order.

Every server gets the same model, threads, per-sequence context and raw ``/v1/completions``
requests; the in-process baseline runs alongside so each figure is also tied to it.
During each 8-client run a probe times ``GET /v1/models`` on the server under load.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from bench.clients import Batch, LatencyProbe, Target, run_simultaneous
from bench.decode import RATE_HEADER, measure_single, rate_row, rate_summary
from bench.fleet import Fleet, quiet_pause
from bench.noise import QUIET_CORES, paired_summary, quiet_summary
from bench.report import check, num, save_result, table
from bench.servers import MODEL_NAME
from bench.stats import Summary
from bench.workload import CONCURRENT_TOKENS, DECODE_TOKENS, concurrent_prompts, rotated

NAME = "peers"
CLIENTS = 8
OURS = "a3s-power"
#: ours with flash attention on: the kernels llama-server's defaults pick on a CPU (ours are
#: off by default: a long context decodes at half the speed with them here, in llama-server
#: too), like for like with llama-server
OURS_LIKE_FOR_LIKE = "a3s-power flash-attn"
BAR = "llama-server"
#: llama-server with flash attention off: like for like with ours by default
BAR_WITHOUT_FLASH = "llama-server no-flash-attn"


def _targets(fleet: Fleet) -> list[Target]:
    targets = [Target(OURS, fleet.power().url, "openai", MODEL_NAME)]
    if fleet.llama_server_available():
        flash = fleet.power_flash_attention()
        targets.append(Target(OURS_LIKE_FOR_LIKE, flash.url, "openai", MODEL_NAME))
    lcpp = fleet.lcpp()
    if lcpp is not None:
        targets.append(Target("llama_cpp.server", lcpp.url, "openai", MODEL_NAME))
    llama = fleet.llama_server()
    if llama is not None:
        targets.append(Target(BAR, llama.url, "openai", MODEL_NAME))
        plain = fleet.llama_server_without_flash_attention()
        if plain is not None:
            targets.append(Target(BAR_WITHOUT_FLASH, plain.url, "openai", MODEL_NAME))
    return targets


def flash_attention_pairs(fleet: Fleet) -> list[Target]:
    """Ours and llama-server, each with flash attention off and on (llama-server's default
    is on, ours off); only ours when llama-server cannot be found."""
    targets = [Target(OURS, fleet.power().url, "openai", MODEL_NAME)]
    llama = fleet.llama_server()
    if llama is not None:
        targets.append(Target(BAR, llama.url, "openai", MODEL_NAME))
        flash = fleet.power_flash_attention()
        targets.append(Target(OURS_LIKE_FOR_LIKE, flash.url, "openai", MODEL_NAME))
        plain = fleet.llama_server_without_flash_attention()
        if plain is not None:
            targets.append(Target(BAR_WITHOUT_FLASH, plain.url, "openai", MODEL_NAME))
    return targets


def _many(
    fleet: Fleet, targets: list[Target], reps: int
) -> tuple[dict[str, list[Batch]], dict[str, list[float]]]:
    """``reps`` rounds of 8 simultaneous clients against every target, rotating."""
    batches: dict[str, list[Batch]] = {t.label: [] for t in targets}
    probes: dict[str, list[float]] = {t.label: [] for t in targets}
    for t in targets:
        run_simultaneous(t, concurrent_prompts(1, rep=99, series=12), 8)  # warm-up
    for rep in range(reps):
        # none cached by another benchmark on our server; each server reads them once
        prompts = concurrent_prompts(CLIENTS, rep, series=11)
        for t in rotated(targets, rep):
            quiet_pause(fleet)
            probe = LatencyProbe(t.url, ["/v1/models"], interval=0.05).start()
            batch, others = fleet.meter.measure(
                partial(run_simultaneous, t, prompts, CONCURRENT_TOKENS)
            )
            probe.stop()
            batch.others_cores = others
            batches[t.label].append(batch)
            probes[t.label].extend(probe.samples["/v1/models"])
            print(
                f"  rep {rep + 1}/{reps} {t.label} x{CLIENTS}: "
                f"{batch.aggregate_tokens_per_s:.1f} tok/s, worst TTFT {batch.worst_ttft:.2f} s, "
                f"{len(batch.results) - batch.ok} failed (others {others:.2f} cores)",
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
    batches, probes = _many(fleet, targets, reps)
    base = single["in-process"]
    bar_single = single.get(BAR, [])
    bar_batches = batches.get(BAR, [])
    summary: dict[str, Any] = {}
    single_rows = []
    many_rows = []
    for label, results in single.items():
        entry: dict[str, Any] = {
            "single_vs_in_process": rate_summary(results, base),
            "single_vs_llama_server": rate_summary(results, bar_single) if bar_single else None,
            "single_samples": [r.sample() for r in results],
        }
        summary[label] = entry
        data = entry["single_vs_llama_server"] or entry["single_vs_in_process"]
        base_label = BAR if bar_single else "in-process"
        other = "baseline" if label == base_label else "-"
        single_rows.append(rate_row(label, data, label == OURS and bool(bar_single), 1.0, other))
        if label not in batches:
            continue
        mine = batches[label]
        aggregate, agg_basis = quiet_summary(mine, lambda b: b.aggregate_tokens_per_s)
        worst, worst_basis = quiet_summary(mine, lambda b: b.worst_ttft)
        agg_ratio = paired_summary(mine, bar_batches, lambda b: b.aggregate_tokens_per_s)
        ttft_ratio = paired_summary(mine, bar_batches, lambda b: b.worst_ttft)
        models = Summary.of(probes[label])
        if label == OURS and single.get(BAR_WITHOUT_FLASH) and batches.get(BAR_WITHOUT_FLASH):
            entry["vs_llama_server_without_flash_attention"] = {
                "single": rate_summary(results, single[BAR_WITHOUT_FLASH]),
                "aggregate": paired_summary(
                    mine, batches[BAR_WITHOUT_FLASH], lambda b: b.aggregate_tokens_per_s
                ),
                "worst_ttft": paired_summary(
                    mine, batches[BAR_WITHOUT_FLASH], lambda b: b.worst_ttft
                ),
            }
        entry.update(
            {
                "clients": CLIENTS,
                "aggregate_tokens_per_s": aggregate.as_dict(),
                "aggregate_basis": agg_basis,
                "median_ttft_s": Summary.of([b.median_ttft for b in mine]).as_dict(),
                "worst_ttft_s": worst.as_dict(),
                "worst_ttft_basis": worst_basis,
                "aggregate_vs_llama_server": agg_ratio,
                "worst_ttft_vs_llama_server": ttft_ratio,
                "failed_streams": sum(len(b.results) - b.ok for b in mine),
                "v1_models_under_load_s": models.as_dict(),
                "v1_models_samples": probes[label],
                "batches": [b.sample() for b in mine],
            }
        )
        many_rows.append(
            [
                label,
                f"{aggregate.spread(1)} [{agg_basis}]",
                f"{Summary(**agg_ratio['ratio']).spread(2)} [{agg_ratio['basis']}]",
                f"{worst.spread(2)} [{worst_basis}]",
                f"{Summary(**ttft_ratio['ratio']).spread(2)} [{ttft_ratio['basis']}]",
                entry["failed_streams"],
                f"{models.p99 * 1000:.0f}" if models.n else "n/a",
            ]
        )
    ratio_to = "llama-server" if bar_single else "in-process"
    print(
        table(
            f"Peers, single stream of {DECODE_TOKENS} tokens, {config.threads} threads, "
            f"/v1/completions; ratios to {ratio_to}, paired by round; quiet = others "
            f"< {QUIET_CORES} cores",
            [*RATE_HEADER, "ours >= 1.0"],
            single_rows,
        )
    )
    print(
        table(
            f"Peers, {CLIENTS} simultaneous clients x {CONCURRENT_TOKENS} tokens, median "
            f"(min-max) of {reps}",
            [
                "server",
                "aggregate tok/s",
                "aggregate / llama-server",
                "worst TTFT s",
                "worst TTFT / llama-server",
                "failed streams",
                "/v1/models p99 ms",
            ],
            many_rows,
        ),
        flush=True,
    )
    return save_result(
        NAME,
        summary,
        fleet=fleet.describe(),
        reps=reps,
        quiet_cores=QUIET_CORES,
        single_tokens=DECODE_TOKENS,
        clients=CLIENTS,
        client_tokens=CONCURRENT_TOKENS,
    )


def headline(result: dict[str, Any]) -> list[list[str]]:
    ours = result["results"].get(OURS)
    if ours is None:
        return []
    if BAR not in result["results"]:
        return [["peers", "llama-server", "not available", "-", "n/a"]]
    keys = ("single_vs_llama_server", "aggregate_vs_llama_server", "worst_ttft_vs_llama_server")
    rows = _ratio_rows("", *(ours[k] for k in keys), targets=True)
    like_for_like = []
    plain = ours.get("vs_llama_server_without_flash_attention")
    if plain is not None:
        figures = (plain["single"], plain["aggregate"], plain["worst_ttft"])
        like_for_like.append((" (both without flash attention)", figures))
    flash = result["results"].get(OURS_LIKE_FOR_LIKE)
    if flash is not None:
        like_for_like.append((" (both with flash attention)", tuple(flash[k] for k in keys)))
    for suffix, (single, aggregate, worst_ttft) in like_for_like:
        rows += _ratio_rows(suffix, single, aggregate, worst_ttft, targets=False)
    return rows


def _ratio_rows(
    suffix: str,
    single: dict[str, Any],
    aggregate: dict[str, Any],
    worst_ttft: dict[str, Any],
    *,
    targets: bool,
) -> list[list[str]]:
    """The three ratios to a llama-server: the targets (against its defaults), or the same
    figures like for like (checked against the same bounds, for information)."""
    rows = []
    for figure, data, bound, ok in [
        ("single stream tok/s / llama-server", single, ">= 1.0", _at_least_1),
        (f"{CLIENTS}-client aggregate tok/s / llama-server", aggregate, ">= 1.0", _at_least_1),
        (f"{CLIENTS}-client worst TTFT / llama-server", worst_ttft, "<= 1.0", _at_most_1),
    ]:
        value = data["ratio"]["median"]
        value = None if value is None or math.isnan(value) else value
        verdict = check(value, ok)
        rows.append(
            [
                "peers",
                f"{figure}{suffix} [{data['basis']}]",
                num(value),
                bound if targets else f"({bound})",
                verdict if targets else f"info: {verdict}",
            ]
        )
    return rows


def _at_least_1(value: float) -> bool:
    return value >= 1.0


def _at_most_1(value: float) -> bool:
    return value <= 1.0

"""12. Mixed lengths: 8 simultaneous clients that ask for different numbers of tokens, so
their streams end at different times, as real ones do; on ours and on llama-server, each
with flash attention off and on.

With one KV stream per sequence this llama.cpp decodes sequences that are not neighbours in
separate passes over the weights (``ceiling``), so a stream that ends between running ones
can leave the rest decoding in two passes. Baseline, same server, same run: the same 8
prompts asking for the same total number of tokens in equal parts, so that every stream ends
together. The figure is the aggregate rate (all tokens over the time until the last stream
ends) with mixed lengths over equal ones, and against llama-server. llama-server runs a third
time with ``--kv-unified`` (one KV stream for all slots), the setting that avoids the
separate passes, for information.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from bench.clients import Batch, Target, run_simultaneous
from bench.fleet import Fleet, quiet_pause
from bench.noise import paired_summary, quiet_summary
from bench.peers import BAR, OURS, flash_attention_pairs
from bench.report import paired_info_row, save_result, table
from bench.servers import MODEL_NAME
from bench.stats import Summary
from bench.workload import concurrent_prompts, rotated

NAME = "mixed_lengths"
#: tokens asked by each of the 8 clients: 1,152 in all, the short ones among the long ones
LENGTHS = (256, 32, 224, 64, 192, 96, 160, 128)
EQUAL = (sum(LENGTHS) // len(LENGTHS),) * len(LENGTHS)
#: story openings no other benchmark of a run sends (see workload.concurrent_prompts)
SERIES = 40
#: llama-server with one KV stream for all slots: no pass per run of neighbours
BAR_UNIFIED = "llama-server kv-unified"


def rate(batch: Batch) -> float:
    """All the batch's tokens over the time until its last stream ended."""
    return batch.aggregate_tokens_per_s


def _targets(fleet: Fleet) -> list[Target]:
    targets = flash_attention_pairs(fleet)
    unified = fleet.llama_server_unified_cache()
    if unified is not None:
        targets.append(Target(BAR_UNIFIED, unified.url, "openai", MODEL_NAME))
    return targets


def run(fleet: Fleet) -> dict[str, Any]:
    reps = fleet.config.repetitions(full=3, quick=1)
    print(
        f"== mixed_lengths: 8 clients asking {', '.join(map(str, LENGTHS))} tokens, "
        f"and {EQUAL[0]} each, {reps} reps",
        flush=True,
    )
    targets = _targets(fleet)
    samples: dict[str, dict[str, list[Batch]]] = {
        t.label: {"mixed": [], "equal": []} for t in targets
    }
    for rep in range(reps):
        for mode, lengths in (("mixed", LENGTHS), ("equal", EQUAL)):
            # nothing cached: each mode and repetition has its own openings
            prompts = concurrent_prompts(len(lengths), rep, SERIES + (mode == "equal"))
            for t in rotated(targets, rep):
                quiet_pause(fleet)
                batch, others = fleet.meter.measure(partial(run_simultaneous, t, prompts, lengths))
                batch.others_cores = others
                samples[t.label][mode].append(batch)
                print(
                    f"  rep {rep + 1}/{reps} {t.label} {mode}: "
                    f"{batch.aggregate_tokens_per_s:.1f} tok/s, "
                    f"{sum(r.tokens for r in batch.results)} tokens, "
                    f"{len(batch.results) - batch.ok} failed (others {others:.2f} cores)",
                    flush=True,
                )
    bar = samples.get(BAR, {}).get("mixed", [])
    unified = samples.get(BAR_UNIFIED, {}).get("mixed", [])
    summary: dict[str, Any] = {}
    rows = []
    for label, modes in samples.items():
        mixed, equal = modes["mixed"], modes["equal"]
        mixed_rate, basis = quiet_summary(mixed, rate)
        equal_rate, _ = quiet_summary(equal, rate)
        own = paired_summary(mixed, equal, rate)
        versus = paired_summary(mixed, bar, rate) if bar else None
        summary[label] = {
            "mixed_tokens_per_s": mixed_rate.as_dict(),
            "equal_tokens_per_s": equal_rate.as_dict(),
            "mixed_over_equal": own,
            "mixed_vs_llama_server": versus,
            "mixed_vs_llama_server_kv_unified": (
                paired_summary(mixed, unified, rate) if unified else None
            ),
            "failed_streams": sum(len(b.results) - b.ok for b in mixed + equal),
            "batches": {"mixed": [b.sample() for b in mixed], "equal": [b.sample() for b in equal]},
        }
        rows.append(
            [
                label,
                f"{mixed_rate.spread(1)} [{basis}]",
                equal_rate.spread(1),
                f"{Summary(**own['ratio']).spread(2)} [{own['basis']}]",
                f"{Summary(**versus['ratio']).spread(2)} [{versus['basis']}]" if versus else "n/a",
                summary[label]["failed_streams"],
            ]
        )
    print(
        table(
            f"Mixed lengths: 8 clients, {sum(LENGTHS)} tokens in all, aggregate tok/s, "
            f"median (min-max) of {reps}",
            [
                "server",
                "mixed lengths",
                f"equal ({EQUAL[0]} each)",
                "mixed / equal",
                "mixed / llama-server",
                "failed streams",
            ],
            rows,
        ),
        flush=True,
    )
    return save_result(
        NAME, summary, fleet=fleet.describe(), reps=reps, lengths=list(LENGTHS), equal=EQUAL[0]
    )


def headline(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    ours = result["results"].get(OURS) or {}
    for key, whom in (
        ("mixed_vs_llama_server", "llama-server (its defaults)"),
        ("mixed_vs_llama_server_kv_unified", "llama-server --kv-unified"),
    ):
        versus = ours.get(key)
        if versus:
            rows.append(paired_info_row(NAME, f"aggregate tok/s / {whom}", versus))
    for label in (OURS, BAR, BAR_UNIFIED):
        figures = result["results"].get(label)
        if figures is not None:
            own = figures["mixed_over_equal"]
            rows.append(paired_info_row(NAME, f"{label}: mixed / equal lengths", own))
    return rows

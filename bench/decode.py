"""1. Single-stream decode: tokens/s over HTTP through each API, over in-process tokens/s.

One greedy generation of 256 tokens from a raw prompt, streamed; the baseline is
llama-cpp-python's ``Llama.create_completion(stream=True)`` on the same model and threads.
Targets take turns within each repetition; ratios pair samples of the same repetition.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from bench.clients import StreamResult, Target, new_client, stream
from bench.fleet import Fleet, quiet_pause
from bench.noise import QUIET_CORES, is_quiet, paired_summary
from bench.report import check, num, save_result, table, verdict
from bench.servers import MODEL_NAME
from bench.stats import Summary
from bench.workload import DECODE_PROMPT, DECODE_TOKENS, rotated

NAME = "decode"
TARGET_RATIO = 1.0


def power_targets(url: str) -> list[Target]:
    """Our two APIs, speaking raw completions so the prompt is the baseline's, token for token."""
    return [
        Target("a3s-power /api/generate", url, "ollama", MODEL_NAME),
        Target("a3s-power /v1/completions", url, "openai", MODEL_NAME),
    ]


def measure_single(
    fleet: Fleet,
    targets: list[Target],
    reps: int,
    tokens: int = DECODE_TOKENS,
    prompt: str = DECODE_PROMPT,
) -> dict[str, list[StreamResult]]:
    """``reps`` rounds of: the in-process baseline and every target, in rotating order.

    A round in which some other process took CPU is kept, and followed by an extra round
    (at most ``reps // 2 + 1`` extra in all), so that quiet rounds are likely to exist.
    """
    baseline = fleet.baseline()
    labels = [baseline.label] + [t.label for t in targets]
    samples: dict[str, list[StreamResult]] = {label: [] for label in labels}
    clients = {t.label: new_client() for t in targets}
    extra = reps // 2 + 1
    try:
        # warm-up: first requests pay for connections, caches and lazy imports
        baseline.generate(prompt, 8)
        for t in targets:
            stream(t, prompt, 8, clients[t.label])
        rounds = 0
        while rounds < reps + extra:
            quiet_round = True
            for label in rotated(labels, rounds):
                quiet_pause(fleet)
                if label == baseline.label:
                    result, others = fleet.meter.measure(lambda: baseline.generate(prompt, tokens))
                else:
                    target = next(t for t in targets if t.label == label)
                    result, others = fleet.meter.measure(
                        partial(stream, target, prompt, tokens, clients[label])
                    )
                result.others_cores = others
                quiet_round = quiet_round and is_quiet(others)
                samples[label].append(result)
                status = f"{result.tokens_per_s:.1f} tok/s" if result.ok else result.error
                print(
                    f"  round {rounds + 1} {label}: {status} (others {others:.2f} cores)",
                    flush=True,
                )
            rounds += 1
            if rounds >= reps and quiet_round:
                break
            if rounds >= reps and not quiet_round:
                print("  (others were busy: one more round)", flush=True)
    finally:
        for client in clients.values():
            client.close()
    return samples


def rate_summary(results: list[StreamResult], base: list[StreamResult]) -> dict[str, Any]:
    """tokens/s of ``results`` and their ratio to ``base``, over all and quiet rounds."""
    rates = [r.tokens_per_s for r in results]
    quiet_rates = [r.tokens_per_s for r in results if is_quiet(r.others_cores)]
    ratios = paired_summary(results, base, lambda r: r.tokens_per_s)
    return {
        "tokens_per_s": Summary.of(rates).as_dict(),
        "tokens_per_s_quiet": Summary.of(quiet_rates).as_dict(),
        "ratio_all": ratios["all"],
        "ratio_quiet": ratios["quiet"],
        "ratio": ratios["ratio"],
        "basis": ratios["basis"],
    }


def summarize(samples: dict[str, list[StreamResult]], baseline_label: str) -> dict[str, Any]:
    """Per target: tokens/s, decode-only tokens/s, TTFT, and ratios to the baseline."""
    base = samples[baseline_label]
    out: dict[str, Any] = {}
    for label, results in samples.items():
        out[label] = {
            **rate_summary(results, base),
            "decode_tokens_per_s": Summary.of([r.decode_tokens_per_s for r in results]).as_dict(),
            "ttft_s": Summary.of([r.ttft for r in results if r.ok]).as_dict(),
            "others_cores": [r.others_cores for r in results],
            "tokens": [r.tokens for r in results],
            "errors": [r.error for r in results if not r.ok],
            "samples": [r.sample() for r in results],
        }
    return out


def rate_row(
    label: str, data: dict[str, Any], is_target: bool, target: float, other: str = "baseline"
) -> list[str]:
    """A table row: tokens/s over all and quiet rounds, the ratio, its basis, the verdict
    (``other`` for a row that is not checked against the target)."""
    chosen = Summary(**data["ratio"])
    return [
        label,
        Summary(**data["tokens_per_s"]).spread(1),
        Summary(**data["tokens_per_s_quiet"]).spread(1),
        Summary(**data["ratio_all"]).spread(2),
        f"{chosen.spread(2)} [{data['basis']} n={chosen.n}]",
        verdict(chosen.median >= target) if is_target else other,
    ]


RATE_HEADER = [
    "target",
    "tok/s all rounds",
    "tok/s quiet rounds",
    "ratio all rounds",
    "ratio (quiet if n>=2)",
]


def run(fleet: Fleet) -> dict[str, Any]:
    config = fleet.config
    reps = config.repetitions(full=5, quick=2)
    print(f"== decode: {DECODE_TOKENS} tokens, {reps} repetitions", flush=True)
    power = fleet.power()
    targets = power_targets(power.url)
    samples = measure_single(fleet, targets, reps)
    baseline = fleet.baseline().label
    summary = summarize(samples, baseline)
    rows = [
        rate_row(label, data, label != baseline, TARGET_RATIO) for label, data in summary.items()
    ]
    print(
        table(
            f"Single-stream decode, {DECODE_TOKENS} tokens, {config.threads} threads, "
            f"median (min-max); ratios to in-process paired by round; quiet = others "
            f"< {QUIET_CORES} cores",
            [*RATE_HEADER, "target >= 1.0"],
            rows,
        ),
        flush=True,
    )
    return save_result(
        NAME,
        summary,
        fleet=fleet.describe(),
        reps=reps,
        quiet_cores=QUIET_CORES,
        prompt=DECODE_PROMPT,
        max_tokens=DECODE_TOKENS,
    )


def headline(result: dict[str, Any]) -> list[list[str]]:
    """Rows for the summary table: benchmark, figure, value, target, verdict."""
    rows = []
    for label, data in result["results"].items():
        if label == "in-process":
            continue
        value = data["ratio"]["median"]
        rows.append(
            [
                "decode",
                f"{label} tokens/s / in-process [{data['basis']}]",
                num(value),
                f">= {TARGET_RATIO}",
                check(value, lambda v: v >= TARGET_RATIO),
            ]
        )
    return rows

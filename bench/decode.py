"""1. Single-stream decode: tokens/s over HTTP through each API, over in-process tokens/s.

One greedy generation of 256 tokens from a raw prompt, streamed; the baseline is
llama-cpp-python's ``Llama.create_completion(stream=True)`` on the same model and threads.
Targets take turns within each repetition; ratios pair samples of the same repetition.
"""

from __future__ import annotations

from typing import Any

import httpx

from bench.clients import StreamResult, Target, stream
from bench.report import check, cleaned, machine_facts, num, table, verdict, write_result
from bench.servers import MODEL_NAME, Fleet, quiet_pause
from bench.stats import Summary, paired_ratios
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
    """``reps`` rounds of: the in-process baseline and every target, in rotating order."""
    baseline = fleet.baseline()
    labels = [baseline.label] + [t.label for t in targets]
    samples: dict[str, list[StreamResult]] = {label: [] for label in labels}
    clients = {t.label: httpx.Client() for t in targets}
    try:
        # warm-up: first requests pay for connections, caches and lazy imports
        baseline.generate(prompt, 8)
        for t in targets:
            stream(t, prompt, 8, clients[t.label])
        for rep in range(reps):
            for label in rotated(labels, rep):
                quiet_pause()
                if label == baseline.label:
                    result = baseline.generate(prompt, tokens)
                else:
                    target = next(t for t in targets if t.label == label)
                    result = stream(target, prompt, tokens, clients[label])
                samples[label].append(result)
                status = f"{result.tokens_per_s:.1f} tok/s" if result.ok else result.error
                print(f"  rep {rep + 1}/{reps} {label}: {status}", flush=True)
    finally:
        for client in clients.values():
            client.close()
    return samples


def summarize(samples: dict[str, list[StreamResult]], baseline_label: str) -> dict[str, Any]:
    """Per target: tokens/s, decode-only tokens/s, TTFT, and ratios to the baseline."""
    base = [r.tokens_per_s for r in samples[baseline_label]]
    out: dict[str, Any] = {}
    for label, results in samples.items():
        rates = [r.tokens_per_s for r in results]
        out[label] = {
            "tokens_per_s": Summary.of(rates).as_dict(),
            "decode_tokens_per_s": Summary.of([r.decode_tokens_per_s for r in results]).as_dict(),
            "ttft_s": Summary.of([r.ttft for r in results if r.ok]).as_dict(),
            "ratio_to_in_process": Summary.of(paired_ratios(rates, base)).as_dict(),
            "tokens": [r.tokens for r in results],
            "errors": [r.error for r in results if not r.ok],
            "samples": [r.sample() for r in results],
        }
    return out


def run(fleet: Fleet) -> dict[str, Any]:
    config = fleet.config
    reps = config.repetitions(full=5, quick=2)
    print(f"== decode: {DECODE_TOKENS} tokens, {reps} repetitions", flush=True)
    power = fleet.power()
    targets = power_targets(power.url)
    samples = measure_single(fleet, targets, reps)
    summary = summarize(samples, fleet.baseline().label)
    rows = []
    for label, data in summary.items():
        ratio = Summary(**data["ratio_to_in_process"])
        is_target = label != fleet.baseline().label
        rows.append(
            [
                label,
                Summary(**data["tokens_per_s"]).spread(1),
                Summary(**data["decode_tokens_per_s"]).spread(1),
                ratio.spread(2),
                verdict(ratio.median >= TARGET_RATIO) if is_target else "baseline",
            ]
        )
    print(
        table(
            f"Single-stream decode, {DECODE_TOKENS} tokens, {config.threads} threads, "
            f"median (min-max) of {reps}",
            ["target", "tokens/s", "decode tokens/s", "ratio to in-process", "target >= 1.0"],
            rows,
        ),
        flush=True,
    )
    result = {
        "benchmark": NAME,
        "machine": machine_facts(),
        "fleet": fleet.describe(),
        "reps": reps,
        "prompt": DECODE_PROMPT,
        "max_tokens": DECODE_TOKENS,
        "results": summary,
    }
    print(f"  wrote {write_result(NAME, result)}", flush=True)
    return dict(cleaned(result))


def headline(result: dict[str, Any]) -> list[list[str]]:
    """Rows for the summary table: benchmark, figure, value, target, verdict."""
    rows = []
    for label, data in result["results"].items():
        if label == "in-process":
            continue
        ratio = data["ratio_to_in_process"]["median"]
        rows.append(
            [
                "decode",
                f"{label} tokens/s / in-process",
                num(ratio),
                f">= {TARGET_RATIO}",
                check(ratio, lambda v: v >= TARGET_RATIO),
            ]
        )
    return rows

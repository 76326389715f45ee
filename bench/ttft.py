"""2. Time to first token: a short prompt over HTTP, minus the same prompt in-process.

Each repetition uses a different short prompt (the same one for every target), so no
target answers from a prefix cached by the previous repetition.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from bench.clients import StreamResult, new_client, stream
from bench.decode import power_targets
from bench.fleet import Fleet, quiet_pause
from bench.noise import is_quiet
from bench.report import check, num, save_result, table, verdict
from bench.stats import Summary, quiet_first
from bench.workload import TTFT_TOKENS, rotated, ttft_prompt

NAME = "ttft"
#: seconds of overhead over in-process that the target allows
TARGET_OVERHEAD = 0.010


def run(fleet: Fleet) -> dict[str, Any]:
    config = fleet.config
    # three passes over the twelve prompts: medians of tens of milliseconds need many samples
    reps = config.repetitions(full=36, quick=4)
    print(f"== ttft: short prompts, {reps} repetitions", flush=True)
    power = fleet.power()
    baseline = fleet.baseline()
    targets = power_targets(power.url)
    labels = [baseline.label] + [t.label for t in targets]
    samples: dict[str, list[StreamResult]] = {label: [] for label in labels}
    clients = {t.label: new_client() for t in targets}
    try:
        baseline.generate("Hello", 2)
        for t in targets:
            stream(t, "Hello", 2, clients[t.label])
        for rep in range(reps):
            for label in rotated(labels, rep):
                prompt = ttft_prompt(rep, labels.index(label), len(labels))
                quiet_pause(fleet, max_wait=5)
                if label == baseline.label:
                    work = partial(baseline.generate, prompt, TTFT_TOKENS)
                else:
                    target = next(t for t in targets if t.label == label)
                    work = partial(stream, target, prompt, TTFT_TOKENS, clients[label])
                result, others = fleet.meter.measure(work)
                result.others_cores = others
                samples[label].append(result)
    finally:
        for client in clients.values():
            client.close()
    base = samples[baseline.label]
    summary: dict[str, Any] = {}
    rows = []
    for label, results in samples.items():
        ttfts = [r.ttft if r.ok else float("nan") for r in results]
        diffs = [a - b.ttft for a, b in zip(ttfts, base, strict=True)]
        quiet = [
            d
            for d, a, b in zip(diffs, results, base, strict=True)
            if is_quiet(a.others_cores) and is_quiet(b.others_cores)
        ]
        overhead, basis = quiet_first(diffs, quiet)
        ttft = Summary.of(ttfts)
        summary[label] = {
            "ttft_s": ttft.as_dict(),
            "overhead_all_s": Summary.of(diffs).as_dict(),
            "overhead_quiet_s": Summary.of(quiet).as_dict(),
            "overhead_s": overhead.as_dict(),
            "basis": basis,
            "others_cores": [r.others_cores for r in results],
            "errors": [r.error for r in results if not r.ok],
            "samples": [r.sample() for r in results],
        }
        is_target = label != baseline.label
        rows.append(
            [
                label,
                ttft.spread(1, 1000),
                f"{overhead.spread(1, 1000)} [{basis} n={overhead.n}]" if is_target else "-",
                verdict(overhead.median < TARGET_OVERHEAD) if is_target else "baseline",
            ]
        )
    print(
        table(
            f"Time to first token, short prompt, median (min-max) of {reps}, ms",
            ["target", "TTFT ms", "overhead over in-process ms", "target < 10 ms"],
            rows,
        ),
        flush=True,
    )
    return save_result(
        NAME,
        summary,
        fleet=fleet.describe(),
        reps=reps,
        prompts={
            label: [ttft_prompt(rep, index, len(labels)) for rep in range(reps)]
            for index, label in enumerate(labels)
        },
        max_tokens=TTFT_TOKENS,
    )


def headline(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for label, data in result["results"].items():
        if label == "in-process":
            continue
        overhead = data["overhead_s"]["median"]
        ms = None if overhead is None else overhead * 1000
        rows.append(
            [
                "ttft",
                f"{label} TTFT - in-process [{data['basis']}]",
                num(ms, 1, " ms"),
                "< 10 ms",
                check(ms, lambda v: v < TARGET_OVERHEAD * 1000),
            ]
        )
    return rows

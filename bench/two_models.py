"""8. Two loaded models: one model's decode speed after a second model has run.

llama.cpp's OpenMP build keeps a team of worker threads per thread that calls it; once
libgomp manages more threads than there are cores it makes every team sleep between
decodes (measured before the fix: 30 instead of 90 tokens/s). Our engine ends an idle
model's thread when another model's thread starts (and after ``IDLE_THREAD_SECONDS`` while
one runs), so a model that has gone quiet no longer slows the one in use. Measured here,
per round, all through ``/api/generate`` on one server with the same GGUF under two names
(two engines):

* alone: model A, B quiet for 3 s (the baseline);
* B idle: A again, B having generated a few tokens 3 s earlier;
* B just ran: A right after B generated a few tokens.
"""

from __future__ import annotations

import time
from typing import Any

from bench.clients import StreamResult, Target, new_client, stream
from bench.fleet import Fleet, quiet_pause
from bench.report import check, num, save_result, table
from bench.servers import MODEL_NAME
from bench.stats import Summary
from bench.workload import DECODE_PROMPT

NAME = "two_models"
SECOND = "second-model:latest"
TOKENS = 128
#: longer than the engine's idle limit (2 s), so the second model's thread has ended
SETTLE_SECONDS = 3.0
TARGET_RATIO = 0.9


def run(fleet: Fleet) -> dict[str, Any]:
    config = fleet.config
    reps = config.repetitions(full=5, quick=2)
    print(f"== two_models: {TOKENS} tokens of model A around model B, {reps} reps", flush=True)
    power = fleet.power()
    power.cli("cp", MODEL_NAME, SECOND)
    first = Target("model A", power.url, "ollama", MODEL_NAME)
    second = Target("model B", power.url, "ollama", SECOND)
    samples: dict[str, list[StreamResult]] = {"alone": [], "B idle": [], "B just ran": []}
    with new_client() as client:
        stream(second, DECODE_PROMPT, 4, client)  # loads B
        for rep in range(reps):
            time.sleep(SETTLE_SECONDS)
            quiet_pause(fleet, max_wait=5)
            samples["alone"].append(stream(first, DECODE_PROMPT, TOKENS, client))
            stream(second, DECODE_PROMPT, 4, client)
            time.sleep(SETTLE_SECONDS)
            samples["B idle"].append(stream(first, DECODE_PROMPT, TOKENS, client))
            stream(second, DECODE_PROMPT, 4, client)
            samples["B just ran"].append(stream(first, DECODE_PROMPT, TOKENS, client))
            line = ", ".join(f"{k} {v[-1].decode_tokens_per_s:.1f}" for k, v in samples.items())
            print(f"  rep {rep + 1}/{reps} tok/s: {line}", flush=True)
    base = [r.decode_tokens_per_s for r in samples["alone"]]
    summary: dict[str, Any] = {}
    rows = []
    for label, results in samples.items():
        rates = [r.decode_tokens_per_s for r in results]
        ratio = Summary.of([r / b for r, b in zip(rates, base, strict=True)])
        summary[label] = {
            "tokens_per_s": Summary.of(rates).as_dict(),
            "ratio_to_alone": ratio.as_dict(),
            "samples": [r.sample() for r in results],
        }
        verdict = check(ratio.median, lambda v: v >= TARGET_RATIO) if label == "B idle" else "-"
        rows.append([label, Summary.of(rates).spread(1), ratio.spread(2), verdict])
    print(
        table(
            f"Model A's decode, {TOKENS} tokens, with a second model loaded, median (min-max) "
            f"of {reps}",
            ["model A", "tok/s", "ratio to alone", f"B idle >= {TARGET_RATIO}"],
            rows,
        ),
        flush=True,
    )
    return save_result(NAME, summary, fleet=fleet.describe(), reps=reps)


def headline(result: dict[str, Any]) -> list[list[str]]:
    idle = result["results"]["B idle"]["ratio_to_alone"]["median"]
    busy = result["results"]["B just ran"]["ratio_to_alone"]["median"]
    return [
        [
            NAME,
            "model A tok/s after model B went idle / alone",
            num(idle),
            f">= {TARGET_RATIO}",
            check(idle, lambda v: v >= TARGET_RATIO),
        ],
        [NAME, "model A tok/s right after model B ran / alone", num(busy), "-", "info"],
    ]

"""15. Decoding on cores another process wants: threads that follow the cores left.

llama.cpp's threads meet at a spinning barrier after every operation; a thread whose core
another process took holds up the rest for a time slice each time. Our engine decodes with
the cores other processes leave (``adapt_threads``, on by default:
``power_backend_llamacpp/cpu_share.py``). Measured in-process on our engine, per round, the
same greedy generation on two engines loaded side by side, alternated:

* adapting: the default;
* fixed: ``adapt_threads`` off, every loaded thread always (the baseline);

first on a quiet machine (adapting must cost nothing there), then beside processes that
keep all cores but one busy (``while True: pass``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Any

from bench.fleet import Fleet, quiet_pause
from bench.report import check, num, save_result, table
from bench.stats import Summary
from bench.workload import DECODE_PROMPT
from power_backend_llamacpp import LlamaCppBackend, LlamaCppEngine
from power_core.engine import CompletionJob, LoadSpec
from power_core.types import GenerationDone, LoadOptions, SamplingOptions

NAME = "shared_cores"
TOKENS = 128
#: the end tokens banned, so every round decodes all its tokens
SAMPLING = SamplingOptions(temperature=0.0, repeat_penalty=1.0, logit_bias={0: -100.0, 2: -100.0})
TARGET_BUSY = 2.0
TARGET_QUIET = 0.95


@contextmanager
def _spinners(count: int) -> Any:
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def _tokens_per_s(engine: LlamaCppEngine) -> float:
    for event in engine.submit(CompletionJob(DECODE_PROMPT, sampling=SAMPLING, max_tokens=TOKENS)):
        if isinstance(event, GenerationDone):
            return event.usage.completion_tokens / (event.usage.eval_ns / 1e9)
    raise RuntimeError("the generation ended without its summary")


def _engine(fleet: Fleet, adapt: bool) -> LlamaCppEngine:
    options = LoadOptions(
        num_ctx=1024, num_parallel=1, num_thread=fleet.config.threads, adapt_threads=adapt
    )
    spec = LoadSpec(
        name=f"adapt={adapt}", path=fleet.config.model, digest="", format="gguf", options=options
    )
    engine = LlamaCppBackend().load(spec)
    assert isinstance(engine, LlamaCppEngine)
    return engine


def run(fleet: Fleet) -> dict[str, Any]:
    reps = fleet.config.repetitions(full=5, quick=2)
    busy = len(os.sched_getaffinity(0)) - 1
    print(
        f"== shared_cores: {TOKENS} tokens in-process, quiet and beside {busy} busy "
        f"process(es), {reps} reps",
        flush=True,
    )
    engines = {"adapting": _engine(fleet, True), "fixed": _engine(fleet, False)}
    rates: dict[str, dict[str, list[float]]] = {
        phase: {label: [] for label in engines} for phase in ("quiet", "busy")
    }
    try:
        for engine in engines.values():
            _tokens_per_s(engine)  # warm
        for rep in range(reps):
            quiet_pause(fleet, max_wait=5)
            for label, engine in engines.items():
                rates["quiet"][label].append(_tokens_per_s(engine))
            with _spinners(busy):
                for label, engine in engines.items():
                    _tokens_per_s(engine)  # the adapting one reads the load meanwhile
                    rates["busy"][label].append(_tokens_per_s(engine))
            line = ", ".join(
                f"{phase} {label} {values[-1]:.1f}"
                for phase, by_label in rates.items()
                for label, values in by_label.items()
            )
            print(f"  rep {rep + 1}/{reps} tok/s: {line}", flush=True)
    finally:
        for engine in engines.values():
            engine.close()
    summary: dict[str, Any] = {}
    rows = []
    for phase, by_label in rates.items():
        ratio = Summary.of(
            [a / f for a, f in zip(by_label["adapting"], by_label["fixed"], strict=True)]
        )
        target = TARGET_BUSY if phase == "busy" else TARGET_QUIET
        summary[phase] = {
            label: Summary.of(values).as_dict() | {"samples": values}
            for label, values in by_label.items()
        } | {"ratio": ratio.as_dict()}
        rows.append(
            [
                phase,
                Summary.of(by_label["adapting"]).spread(1),
                Summary.of(by_label["fixed"]).spread(1),
                ratio.spread(2),
                check(ratio.median, lambda v, t=target: v >= t),
            ]
        )
    print(
        table(
            f"Decode, {TOKENS} tokens, adapting threads against fixed, median (min-max) of {reps}",
            ["machine", "adapting tok/s", "fixed tok/s", "ratio", "target"],
            rows,
        ),
        flush=True,
    )
    return save_result(NAME, summary, fleet=fleet.describe(), reps=reps, busy_processes=busy)


def headline(result: dict[str, Any]) -> list[list[str]]:
    busy = result["results"]["busy"]["ratio"]["median"]
    quiet = result["results"]["quiet"]["ratio"]["median"]
    return [
        [
            NAME,
            "decode beside busy processes: adapting / fixed threads",
            num(busy),
            f">= {TARGET_BUSY}",
            check(busy, lambda v: v >= TARGET_BUSY),
        ],
        [
            NAME,
            "decode on a quiet machine: adapting / fixed threads",
            num(quiet),
            f">= {TARGET_QUIET}",
            check(quiet, lambda v: v >= TARGET_QUIET),
        ],
    ]

"""``python -m bench all|decode|ttft|concurrency|responsive|peers|two_models|pull|cli|summary``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.clients import CLIENT_KINDS, use_client
from bench.fleet import Fleet
from bench.report import RESULTS_DIR, machine_facts, table, write_result
from bench.servers import DEFAULT_MODEL, BenchConfig, default_extra_buffers

#: benchmark name -> module; ``all`` runs them in this order (no servers needed first)
BENCHMARKS = {
    "cli": "bench.cli_startup",
    "pull": "bench.pull",
    "decode": "bench.decode",
    "ttft": "bench.ttft",
    "ceiling": "bench.ceiling",
    "concurrency": "bench.concurrency",
    "responsive": "bench.responsive",
    "peers": "bench.peers",
    "two_models": "bench.two_models",
    "chat_turns": "bench.chat_turns",
    "long_chat": "bench.long_chat",
    "mixed_lengths": "bench.mixed_lengths",
    "long_prompt": "bench.long_prompt",
    "conversations": "bench.conversations",
    "shared_cores": "bench.shared_cores",
    "images": "bench.images",
    "embed_beside": "bench.embed_beside",
    "embed": "bench.embed",
    "conversation_log": "bench.conversation_log",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="A3S Power benchmarks: every figure is a ratio to a baseline measured "
        "in the same run.",
    )
    parser.add_argument(
        "benchmark",
        choices=["all", *BENCHMARKS, "summary", "profile", "gpu_offload"],
        help="what to run; 'summary' prints the table of the latest results; 'profile' "
        "samples our server with py-spy during one and eight streams; 'gpu_offload' "
        "measures num_gpu where llama.cpp has a GPU (not part of 'all')",
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and levels")
    parser.add_argument("--reps", type=int, help="repetitions for every benchmark")
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="llama.cpp threads for every server and the baseline (2)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=Path(os.environ.get("A3S_POWER_TEST_MODEL", str(DEFAULT_MODEL))),
        help="the GGUF to serve (SmolLM2-135M-Instruct Q4_1)",
    )
    parser.add_argument(
        "--client",
        choices=CLIENT_KINDS,
        default="lean",
        help="what reads the streams: a minimal HTTP/1.1 reader (lean, the default) or httpx, "
        "as the OpenAI and Ollama SDKs use (about twice the CPU per token)",
    )
    return parser


def _headlines(results: dict[str, dict[str, Any]]) -> str:
    rows: list[list[str]] = []
    for name, module_name in BENCHMARKS.items():
        if name in results:
            rows.extend(importlib.import_module(module_name).headline(results[name]))
    return table(
        "Summary: every figure against its baseline from the same run",
        ["benchmark", "figure", "value", "target", "verdict"],
        rows,
    )


def _latest() -> dict[str, dict[str, Any]]:
    results = {}
    for name in BENCHMARKS:
        path = RESULTS_DIR / f"{name}-latest.json"
        if path.is_file():
            results[name] = json.loads(path.read_text(encoding="utf-8"))
    return results


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.benchmark == "summary":
        latest = _latest()
        if not latest:
            print(f"no results under {RESULTS_DIR}; run `python -m bench all` first")
            return 1
        dates = sorted({r["machine"]["date"] for r in latest.values()})
        print(f"latest results, {dates[0]} .. {dates[-1]}")
        print(_headlines(latest))
        return 0
    if not args.model.is_file():
        print(
            f"model not found: {args.model} (set A3S_POWER_TEST_MODEL or --model)", file=sys.stderr
        )
        return 2
    config = BenchConfig(
        model=args.model.resolve(),
        threads=args.threads,
        quick=args.quick,
        reps=args.reps,
        extra_buffers=default_extra_buffers(),
        client=args.client,
    )
    use_client(args.client)
    names = list(BENCHMARKS) if args.benchmark == "all" else [args.benchmark]
    modules = {**BENCHMARKS, "profile": "bench.profile", "gpu_offload": "bench.gpu_offload"}
    fleet = Fleet(config)
    results: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    try:
        for name in names:
            results[name] = importlib.import_module(modules[name]).run(fleet)
    finally:
        fleet.close()
    minutes = (time.monotonic() - started) / 60
    print(_headlines(results))
    if args.benchmark == "all":
        path = write_result(
            "all", {"machine": machine_facts(), "minutes": minutes, "results": results}
        )
        print(f"  wrote {path}")
    print(f"done in {minutes:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where our server's time goes: py-spy samples of the server process during one stream
and during 8 simultaneous streams (``python -m bench profile``).

Needs ``py-spy`` (``$PY_SPY``, PATH, or ``~/.cache/a3s-power/peers/tools-venv/bin/py-spy``;
it is on PyPI). Writes the collapsed stacks (flame-graph input) under bench/results/ and
prints the functions holding the most samples, by leaf (self) and by inclusive time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.clients import Target, new_client, run_simultaneous, stream
from bench.fleet import Fleet
from bench.report import RESULTS_DIR, save_result, table
from bench.servers import MODEL_NAME, PEERS_DIR
from bench.workload import (
    CONCURRENT_TOKENS,
    DECODE_PROMPT,
    DECODE_TOKENS,
    TTFT_PROMPTS,
    TTFT_TOKENS,
    concurrent_prompts,
)

NAME = "profile"
TOP = 15


def find_py_spy() -> Path | None:
    configured = os.environ.get("PY_SPY")
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    on_path = shutil.which("py-spy")
    if on_path:
        return Path(on_path)
    bundled = PEERS_DIR / "tools-venv/bin/py-spy"
    return bundled if bundled.is_file() else None


def _record(py_spy: Path, pid: int, out: Path, work: Any) -> float:
    """Sample ``pid`` (all threads, native frames) while ``work()`` runs."""
    spy = subprocess.Popen(
        # --native (to see llama.cpp's own frames) needs blocking sampling: the server is
        # paused for each sample, so keep the rate modest
        [
            str(py_spy),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "100",
            "--threads",
            "--native",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)  # let py-spy attach before the work starts
    start = time.perf_counter()
    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(600)
    elapsed = time.perf_counter() - start
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=60)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait(timeout=10)
    if not out.is_file():
        assert spy.stderr is not None
        raise RuntimeError(f"py-spy wrote nothing: {spy.stderr.read().decode(errors='replace')}")
    return elapsed


def _frame_name(frame: str) -> str:
    # "function (file.py:line)" -> "function (file.py)": lines split one function apart
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({Path(where).name})" if where else name


def top_frames(collapsed: Path) -> dict[str, Any]:
    """Self and inclusive sample counts per function, and per thread, from py-spy raw output."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    # the innermost Python frame of each sample: what Python code was running, or called
    # the native code that was (llama_decode, epoll_wait, ...)
    python_leaf: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        threads[frames[0]] += count
        names = [_frame_name(f) for f in frames[1:]]
        if names:
            self_counts[names[-1]] += count
        python = [n for n in names if n.endswith(".py)")]
        role = "engine" if any("LlamaCppEngine._run" in n for n in names) else "other"
        python_leaf[f"[{role}] {python[-1] if python else names[-1] if names else '?'}"] += count
        for name in set(names):
            inclusive[name] += count
    return {
        "samples": total,
        "threads": threads.most_common(),
        "self": self_counts.most_common(TOP),
        "inclusive": inclusive.most_common(TOP * 2),
        "python_leaf": python_leaf.most_common(TOP * 2),
    }


def run(fleet: Fleet) -> dict[str, Any]:
    py_spy = find_py_spy()
    if py_spy is None:
        raise SystemExit("py-spy not found: pip install py-spy, or set PY_SPY")
    power = fleet.power()
    pid = power.pid()
    assert pid is not None
    target = Target("a3s-power", power.url, "openai", MODEL_NAME)

    def short_requests() -> None:
        # the per-request path (parse, resolve, template, tokenize, first token, render)
        with new_client() as client:
            for i in range(60):
                stream(target, TTFT_PROMPTS[i % len(TTFT_PROMPTS)], TTFT_TOKENS, client)

    scenarios = {
        "single": lambda: run_simultaneous(target, [DECODE_PROMPT], DECODE_TOKENS),
        "8 clients": lambda: run_simultaneous(target, concurrent_prompts(8), CONCURRENT_TOKENS),
        "short requests": short_requests,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    for label, work in scenarios.items():
        out = RESULTS_DIR / f"profile-{label.replace(' ', '-')}.txt"
        print(f"== profile {label}: py-spy on pid {pid} -> {out}", flush=True)
        seconds = _record(py_spy, pid, out, work)
        frames = top_frames(out)
        frames["seconds"] = seconds
        summary[label] = frames
        total = max(frames["samples"], 1)
        print(
            table(
                f"{label}: threads by samples",
                ["thread", "share"],
                [[t, f"{c / total:.0%}"] for t, c in frames["threads"]],
            )
        )
        print(
            table(
                f"{label}: functions by self samples",
                ["function", "share"],
                [[f, f"{c / total:.1%}"] for f, c in frames["self"]],
            )
        )
        print(
            table(
                f"{label}: innermost Python frame by samples ([engine] thread or [other])",
                ["function", "share"],
                [[f, f"{c / total:.1%}"] for f, c in frames["python_leaf"]],
            )
        )
        print(
            table(
                f"{label}: functions by inclusive samples",
                ["function", "share"],
                [[f, f"{c / total:.1%}"] for f, c in frames["inclusive"]],
            ),
            flush=True,
        )
    return save_result(NAME, summary, fleet=fleet.describe())


def headline(result: dict[str, Any]) -> list[list[str]]:
    return []

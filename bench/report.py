"""Machine facts, JSON results under bench/results/, and plain-text tables."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return math.nan


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _package_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_facts() -> dict[str, Any]:
    """What a reader needs to judge the numbers: CPU, cores, load, versions, commit."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    return {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": cores,
        "mem_gib": _mem_total_gib(),
        "loadavg": list(os.getloadavg()),
        "python": sys.version.split()[0],
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no") not in ("", "unknown")),
        "versions": {
            name: _package_version(name)
            for name in (
                "a3s-power",
                "a3s-power-llamacpp",
                "a3s-power-openai",
                "a3s-power-ollama",
                "llama_cpp_python",
                "requests",
                "gevent",
                "flask",
            )
        },
    }


def cleaned(value: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): cleaned(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [cleaned(v) for v in value]
    return value


def save_result(
    name: str, results: Any, fleet: dict[str, Any] | None = None, **details: Any
) -> dict[str, Any]:
    """A benchmark's result (its name, machine facts, the fleet's servers if any, the
    settings in ``details``, then ``results``), written and announced; returns it cleaned."""
    result: dict[str, Any] = {"benchmark": name, "machine": machine_facts()}
    if fleet is not None:
        result["fleet"] = fleet
    result.update(details)
    result["results"] = results
    print(f"  wrote {write_result(name, result)}", flush=True)
    return dict(cleaned(result))


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``results/<name>-<UTC time>.json`` and ``<name>-latest.json``; returns the first."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(cleaned(payload), indent=2, sort_keys=False) + "\n"
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(text, encoding="utf-8")
    (RESULTS_DIR / f"{name}-latest.json").write_text(text, encoding="utf-8")
    return path


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A fixed-width text table (also valid Markdown)."""
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["", f"### {title}", ""]
    for index, row in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if index == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def num(value: float | None, digits: int = 3, unit: str = "") -> str:
    """A number for the summary, ``n/a`` when it was not measured (three decimals by
    default, so a ratio of 0.997 never reads as a passing 1.00)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def paired_info_row(name: str, figure: str, paired: dict[str, Any]) -> list[str]:
    """A summary row, for information, of a paired ratio (``noise.paired_summary``): its
    median, with the rounds it came from."""
    return [name, f"{figure} [{paired['basis']}]", num(paired["ratio"]["median"]), "-", "info"]


def check(value: float | None, ok: Any) -> str:
    """PASS/MISS of ``ok(value)``, ``n/a`` when the value is missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return verdict(bool(ok(value)))


def verdict(ok: bool | None) -> str:
    """PASS, MISS, or n/a when the figure could not be measured."""
    if ok is None:
        return "n/a"
    return "PASS" if ok else "MISS"

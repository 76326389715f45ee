"""7. CLI start-up: wall time of ``a3s-power list`` and ``a3s-power version`` over
``python -c pass`` with the same interpreter (what any Python CLI pays at least)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from bench.fleet import Fleet, quiet_pause
from bench.noise import CpuMeter, Timed, paired_summary, quiet_summary, timed
from bench.report import REPO_ROOT, num, save_result, table
from bench.servers import MODEL_NAME
from bench.workload import rotated

NAME = "cli"


def _commands() -> dict[str, list[str]]:
    script = Path(sys.executable).parent / "a3s-power"
    cli = (
        [str(script)] if script.is_file() else [sys.executable, "-m", "power_core.cli.application"]
    )
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "a3s-power version": [*cli, "version"],
        "a3s-power list": [*cli, "list"],
    }


def _time(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        command,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        cwd=REPO_ROOT,
    )
    return time.perf_counter() - start


def run(fleet: Fleet) -> dict[str, Any]:
    config = fleet.config
    reps = config.repetitions(full=10, quick=3)
    print(f"== cli: start-up, {reps} reps", flush=True)
    home = Path(tempfile.mkdtemp(prefix="a3s-bench-cli-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("A3S_POWER_")}
    env["A3S_POWER_HOME"] = str(home)
    # as after a pip install: byte-code caches exist (the warm-up writes them here), rather
    # than every start compiling the sources again
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    commands = _commands()
    samples: dict[str, list[Timed]] = {label: [] for label in commands}
    meter = CpuMeter(list)
    try:
        modelfile = home / "Modelfile"
        modelfile.write_text(f"FROM {config.model}\n", encoding="utf-8")
        # one model in the store, so `list` reads a manifest and its config
        subprocess.run(
            [*commands["a3s-power list"][:-1], "create", MODEL_NAME, "-f", str(modelfile)],
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        for command in commands.values():  # warm-up: byte-code caches, page cache
            _time(command, env)
        for rep in range(reps):
            quiet_pause(fleet, max_wait=5)
            for label in rotated(list(commands), rep):
                samples[label].append(timed(meter, partial(_time, commands[label], env)))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    base = samples["python -c pass"]
    base_wall, _ = quiet_summary(base, lambda t: t.seconds)
    summary: dict[str, Any] = {}
    rows = []
    for label, values in samples.items():
        # a 14 ms baseline jitters by several ms, so pairing runs adds noise: the headline
        # ratio is of the medians (quiet runs when there are two or more)
        wall, basis = quiet_summary(values, lambda t: t.seconds)
        ratio = wall.median / base_wall.median
        summary[label] = {
            "seconds": wall.as_dict(),
            "basis": basis,
            "samples": [t.seconds for t in values],
            "others_cores": [t.others_cores for t in values],
            "ratio_of_medians": ratio,
            "paired_ratios": paired_summary(values, base, lambda t: t.seconds),
            "command": commands[label],
        }
        rows.append([label, f"{wall.spread(0, 1000)} [{basis}]", f"{ratio:.2f}"])
    print(
        table(
            f"CLI start-up, median (min-max) of {reps}",
            ["command", "wall ms", "median / python -c pass median"],
            rows,
        ),
        flush=True,
    )
    return save_result(NAME, summary, reps=reps)


def headline(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for label in ("a3s-power version", "a3s-power list"):
        data = result["results"][label]
        ms = data["seconds"]["median"]
        rows.append(
            [
                "cli",
                f"{label} / python -c pass",
                num(data["ratio_of_medians"]),
                "-",
                f"info ({num(None if ms is None else ms * 1000, 0, ' ms')})",
            ]
        )
    return rows

"""6. Pull: download rate of the 98 MB GGUF from a local HTTP server through our library
(hashing and verifying in the same pass), over a plain ``requests`` download to disk.

Baselines, both measured in the same run against the same file server: ``requests``
streaming 1 MiB chunks to a file (the target's denominator), and the same plus ``fsync``
(our store makes a blob durable before it counts as pulled). Ours: ``ModelLibrary.pull``
in this process into a fresh store, and ``a3s-power pull URL`` as a user runs it. Each
sample also records the CPU time the whole machine spent (the file server, this process,
the kernel): on 2 cores a download cannot take less wall time than half of it.

Also, for the target's reach: SHA-256 of the file already in memory, in the same rounds.
A pull that hashes cannot take less wall time than the plain download, than the hash
alone (one core's work, which cannot be split), or than the machine CPU of both over the
cores; the plain download's time over the longest of the three is the best ratio this
machine allows, whatever the code.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.fleet import Fleet, quiet_pause
from bench.noise import CpuMeter, Timed, paired_summary, timed
from bench.report import REPO_ROOT, check, num, save_result, table
from bench.servers import FileServer
from bench.stats import Summary
from bench.workload import rotated

NAME = "pull"
CHUNK = 1 << 20
TARGET_RATIO = 0.9


def _plain(url: str, folder: Path, sync: bool) -> None:
    import requests

    with requests.get(url, stream=True, timeout=60) as response:
        response.raise_for_status()
        with open(folder / "model.gguf", "wb") as handle:
            for chunk in response.iter_content(CHUNK):
                handle.write(chunk)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())


def _hash(data: bytes) -> None:
    hashlib.sha256(data).digest()


def _library(url: str, folder: Path) -> None:
    from power_core.config import Settings
    from power_core.plugins import get_registry
    from power_core.stores import open_library

    library = open_library(Settings(home=folder), get_registry())
    library.pull(url, name="bench:pulled")


def _cli(url: str, folder: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("A3S_POWER_")}
    env["A3S_POWER_HOME"] = str(folder)
    script = Path(sys.executable).parent / "a3s-power"
    command = (
        [str(script)] if script.is_file() else [sys.executable, "-m", "power_core.cli.application"]
    )
    subprocess.run(
        [*command, "pull", url, "--name", "bench:pulled"],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
        cwd=REPO_ROOT,
    )


def run(fleet: Fleet) -> dict[str, Any]:
    config = fleet.config
    reps = config.repetitions(full=5, quick=2)
    size = config.model.stat().st_size
    print(f"== pull: {size / 1e6:.0f} MB from a local http.server, {reps} reps", flush=True)
    served = Path(tempfile.mkdtemp(prefix="a3s-bench-served-"))
    os.symlink(config.model, served / config.model.name)
    server = FileServer(served)
    server.start(timeout=30)
    url = f"{server.url}/{config.model.name}"
    data = config.model.read_bytes()
    ways: dict[str, Callable[[str, Path], None]] = {
        "SHA-256 alone, in memory": lambda u, f: _hash(data),
        "requests to disk": lambda u, f: _plain(u, f, sync=False),
        "requests to disk + fsync": lambda u, f: _plain(u, f, sync=True),
        "ModelLibrary.pull": _library,
        "a3s-power pull": _cli,
    }
    samples: dict[str, list[Timed]] = {label: [] for label in ways}
    meter = CpuMeter(lambda: [pid for pid in (server.pid(),) if pid is not None])
    try:
        # warm-up: the source file into the page cache, plugins and imports into this process
        for label in ("requests to disk", "ModelLibrary.pull"):
            folder = Path(tempfile.mkdtemp(prefix="a3s-bench-pull-"))
            ways[label](url, folder)
            shutil.rmtree(folder, ignore_errors=True)
        for rep in range(reps):
            for label in rotated(list(ways), rep):
                folder = Path(tempfile.mkdtemp(prefix="a3s-bench-pull-"))
                try:
                    quiet_pause(fleet)
                    sample = timed(meter, partial(ways[label], url, folder))
                    samples[label].append(sample)
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
                print(
                    f"  rep {rep + 1}/{reps} {label}: {size / sample.seconds / 1e6:.0f} MB/s "
                    f"(others {sample.others_cores:.2f} cores)",
                    flush=True,
                )
    finally:
        server.stop()
        shutil.rmtree(served, ignore_errors=True)
    base = samples["requests to disk"]
    summary: dict[str, Any] = {"best_ratio_allowed": _best_ratios(base, samples)}
    rows = []
    for label, values in samples.items():
        ratios = paired_summary(values, base, lambda t: size / t.seconds)
        ratio = Summary(**ratios["ratio"])
        rate = Summary.of([size / t.seconds / 1e6 for t in values])
        cpu = Summary.of([t.machine_cpu_s for t in values])
        busy = Summary.of([t.machine_cpu_s / t.seconds for t in values])
        summary[label] = {
            "mb_per_s": rate.as_dict(),
            "seconds": [t.seconds for t in values],
            "others_cores": [t.others_cores for t in values],
            "machine_cpu_s": [t.machine_cpu_s for t in values],
            "machine_cpu": cpu.as_dict(),
            "ratio_to_plain": ratios,
        }
        rows.append(
            [
                label,
                rate.spread(0),
                cpu.spread(0, scale=1000),
                busy.spread(2),
                f"{ratio.spread(2)} [{ratios['basis']}]",
                check(ratio.median, lambda v: v >= TARGET_RATIO)
                if label == "ModelLibrary.pull"
                else "-",
            ]
        )
    print(
        table(
            f"Pull of {size / 1e6:.0f} MB over loopback, median (min-max) of {reps}",
            [
                "download",
                "MB/s",
                "machine CPU ms",
                "cores busy",
                "rate / plain requests",
                "target >= 0.9",
            ],
            rows,
        ),
        flush=True,
    )
    return save_result(NAME, summary, reps=reps, bytes=size)


def _best_ratios(plain: list[Timed], samples: dict[str, list[Timed]]) -> dict[str, Any]:
    """Per round: the plain download's time over the least a pull that hashes could take
    (see the module's text), on this machine's cores."""
    cores = os.cpu_count() or 1
    ratios = []
    for download, hashing in zip(plain, samples["SHA-256 alone, in memory"], strict=True):
        cpu = (download.machine_cpu_s + hashing.machine_cpu_s) / cores
        ratios.append(download.seconds / max(download.seconds, hashing.seconds, cpu))
    return Summary.of(ratios).as_dict()


def headline(result: dict[str, Any]) -> list[list[str]]:
    ratio = result["results"]["ModelLibrary.pull"]["ratio_to_plain"]["ratio"]["median"]
    synced = result["results"]["requests to disk + fsync"]["ratio_to_plain"]["ratio"]["median"]
    cli = result["results"]["a3s-power pull"]["ratio_to_plain"]["ratio"]["median"]
    return [
        [
            "pull",
            "ModelLibrary.pull rate / plain requests",
            num(ratio),
            f">= {TARGET_RATIO}",
            check(ratio, lambda v: v >= TARGET_RATIO),
        ],
        ["pull", "(plain requests + fsync) / plain requests", num(synced), "-", "info"],
        *_reach_rows(result),
        ["pull", "a3s-power pull (CLI) / plain requests", num(cli), "-", "info"],
        *_cpu_rows(result),
    ]


def _cpu_rows(result: dict[str, Any]) -> list[list[str]]:
    """The machine's CPU per pull over the plain download's (results before it had none)."""
    ours = result["results"]["ModelLibrary.pull"].get("machine_cpu")
    plain = result["results"]["requests to disk"].get("machine_cpu")
    if not ours or not plain or not plain["median"]:
        return []
    share = ours["median"] / plain["median"]
    return [["pull", "machine CPU: ModelLibrary.pull / plain requests", num(share), "-", "info"]]


def _reach_rows(result: dict[str, Any]) -> list[list[str]]:
    """How fast hashing alone is, and the best ratio the machine allows (results before
    them had neither)."""
    hashing = result["results"].get("SHA-256 alone, in memory")
    best = result["results"].get("best_ratio_allowed")
    if not hashing or not best:
        return []
    alone = hashing["ratio_to_plain"]["ratio"]["median"]
    return [
        ["pull", "SHA-256 alone (in memory) rate / plain requests", num(alone), "-", "info"],
        ["pull", "best ratio a pull that hashes can reach here", num(best["median"]), "-", "info"],
    ]

"""How busy the rest of the machine was while a sample ran.

These machines are shared: another process on one of 2 cores makes llama.cpp's thread
barriers wait for a time slice and a generation runs several times slower. Each sample
records ``others_cores``: the CPU the whole machine used during it minus what the
processes under test (the servers, the in-process worker, this client) used, in cores.
Summaries report medians over all samples and over quiet ones (others below
:data:`QUIET_CORES`), so a reader can tell a slow server from a busy neighbour.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from bench.stats import Summary, quiet_first, ratio

T = TypeVar("T")

#: a sample is quiet when everything else together used less than this many cores
QUIET_CORES = 0.25
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy() -> int:
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()[1:]
    except OSError:
        return 0
    values = [int(v) for v in fields]
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait
    return sum(values) - values[3] - (values[4] if len(values) > 4 else 0)


def _process_busy(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return 0
    fields = text.rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the file, 12 and 13 after the name
    return int(fields[11]) + int(fields[12])


class CpuMeter:
    """Measures ``others_cores`` over a span of time, given the pids that are "ours"."""

    def __init__(self, pids: Callable[[], Iterable[int]]) -> None:
        self._pids = pids

    def _ours(self, pids: list[int]) -> float:
        # children this process has waited for (a CLI run, say) count as ours too
        times = os.times()
        waited = times.children_user + times.children_system
        return sum(_process_busy(pid) for pid in pids) / _TICK + waited

    def measure(self, work: Callable[[], T]) -> tuple[T, float]:
        """Run ``work()``; return its result and the other processes' CPU use in cores."""
        pids = sorted({os.getpid(), *self._pids()})
        machine, ours, start = _machine_busy(), self._ours(pids), time.perf_counter()
        result = work()
        elapsed = time.perf_counter() - start
        others = (_machine_busy() - machine) / _TICK - (self._ours(pids) - ours)
        if elapsed <= 0 or machine == 0:
            return result, math.nan
        return result, max(0.0, others / elapsed)


def is_quiet(others_cores: float) -> bool:
    """Whether a sample ran with the rest of the machine (nearly) idle."""
    return not math.isnan(others_cores) and others_cores < QUIET_CORES


class _Measured(Protocol):
    others_cores: float


M = TypeVar("M", bound=_Measured)


def paired_summary(
    mine: Sequence[M], theirs: Sequence[M], value: Callable[[M], float]
) -> dict[str, Any]:
    """Ratios ``value(mine[i]) / value(theirs[i])`` of samples taken in the same round:
    over all rounds, over quiet rounds (both samples quiet), and the one to report
    (quiet when there are at least two such rounds) with its ``basis``."""
    all_ratios, quiet_ratios = [], []
    for a, b in zip(mine, theirs, strict=False):
        r = ratio(value(a), value(b))
        all_ratios.append(r)
        if is_quiet(a.others_cores) and is_quiet(b.others_cores):
            quiet_ratios.append(r)
    chosen, basis = quiet_first(all_ratios, quiet_ratios)
    return {
        "all": Summary.of(all_ratios).as_dict(),
        "quiet": Summary.of(quiet_ratios).as_dict(),
        "ratio": chosen.as_dict(),
        "basis": basis,
    }


def quiet_summary(items: Sequence[M], value: Callable[[M], float]) -> tuple[Summary, str]:
    """``value`` over quiet samples when there are two or more, else over all."""
    return quiet_first(
        [value(i) for i in items], [value(i) for i in items if is_quiet(i.others_cores)]
    )


def settle(pids: Callable[[], Iterable[int]], max_wait: float = 20.0, window: float = 0.5) -> float:
    """Wait (at most ``max_wait`` seconds) for a ``window`` in which the rest of the machine
    was quiet, so the next sample starts on idle cores; returns the seconds waited."""
    meter = CpuMeter(pids)
    start = time.perf_counter()
    while True:
        _, others = meter.measure(lambda: time.sleep(window))
        waited = time.perf_counter() - start
        if is_quiet(others) or waited >= max_wait:
            return waited


class Timed:
    """A wall time, how busy the rest of the machine was meanwhile, and the CPU time the
    whole machine spent (every process and the kernel, this work included)."""

    def __init__(self, seconds: float, others_cores: float, machine_cpu_s: float) -> None:
        self.seconds = seconds
        self.others_cores = others_cores
        self.machine_cpu_s = machine_cpu_s


def timed(meter: CpuMeter, work: Callable[[], object]) -> Timed:
    """Run ``work()`` and return its wall time with ``others_cores`` and the machine's CPU."""
    busy, start = _machine_busy(), time.perf_counter()
    _, others = meter.measure(work)
    seconds = time.perf_counter() - start
    return Timed(seconds, others, (_machine_busy() - busy) / _TICK if busy else math.nan)

"""How many threads a decode should use when other processes want the same cores.

llama.cpp's threads meet at a spinning barrier after every operation of a graph. When
another process holds one of the cores, the thread that lost its core is back only a
scheduler's time slice later, and every barrier waits for it. SmolLM2 on 2 cores beside one
busy process decoded 18-20 tokens/s with 2 threads and 62-100 with 1 (180 with 2 when the
machine was quiet). So an engine decodes with as many threads as the cores other processes
leave it (at least 1, at most the threads it was loaded with), measured while it decodes
from the cores' busy time in ``/proc/stat`` less this process's own CPU time.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

#: how often the share is read while decoding
INTERVAL_SECONDS = 0.25
#: the first reading after an idle spell, sooner: the load may have come or gone
FIRST_INTERVAL_SECONDS = 0.1
#: a reading older than this (the engine was idle) starts a new measurement
STALE_SECONDS = 1.0
#: a core counts as taken once other processes use more than this part of it: beside a
#: process busy 30% of the time, SmolLM2 decoded 132 tokens/s with 2 threads and 102 with 1;
#: beside one busy 50%, 89 with 2 and 105 with 1 (75%: 62 and 97)
TAKEN = 0.4
_PROC_STAT = Path("/proc/stat")
#: /proc/stat's fields after the name: user nice system idle iowait irq softirq steal ...
_IDLE_FIELDS = (3, 4)


def busy_seconds(cpus: set[int], proc_stat: Path = _PROC_STAT) -> float | None:
    """CPU seconds the machine has spent busy on ``cpus`` (steal included: another guest's),
    or ``None`` where ``/proc/stat`` cannot be read (not Linux)."""
    try:
        lines = proc_stat.read_text().splitlines()
    except OSError:
        return None
    ticks = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        fields = [int(value) for value in rest.split()]
        ticks += sum(fields[:8]) - sum(fields[i] for i in _IDLE_FIELDS)
    return ticks / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """CPU seconds this process has used, all of its threads together."""
    times = os.times()
    return times.user + times.system


def usable_cpus() -> set[int]:
    """The cores this process may run on."""
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # not on Linux
        return set(range(os.cpu_count() or 1))


def threads_for(cores: int, others: float, most: int) -> int:
    """Threads for a decode on ``cores`` while other processes keep ``others`` cores busy:
    one per core they leave (a core counts as taken past :data:`TAKEN` of it), at least 1
    and at most ``most``."""
    free = cores - math.ceil(max(0.0, others) - TAKEN)
    return max(1, min(most, free))


class ThreadGovernor:
    """Reads the cores' share while an engine decodes, and sets its threads to it.

    ``apply(threads)`` sets the engine's threads; it is called only when they change.
    """

    def __init__(
        self,
        most: int,
        apply: Callable[[int], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        busy: Callable[[set[int]], float | None] = busy_seconds,
        cpus: set[int] | None = None,
    ) -> None:
        self.most = most
        self.threads = most
        self._apply = apply
        self._clock = clock
        self._busy = busy
        self._cpus = cpus if cpus is not None else usable_cpus()
        self._last: tuple[float, float, float] | None = None
        self._interval = FIRST_INTERVAL_SECONDS
        self._dropping = False

    def before_decode(self) -> None:
        """Called before each decode: every :data:`INTERVAL_SECONDS`, measure and adjust."""
        now = self._clock()
        last = self._last
        if last is not None and now - last[0] < self._interval:
            return
        busy = self._busy(self._cpus)
        if busy is None:
            return
        own = own_seconds()
        self._last = (now, busy, own)
        if last is None or now - last[0] > STALE_SECONDS:
            # a new measurement starts: the engine was idle in between, and starts again
            # with every thread (a quiet machine, the common case, then loses nothing)
            self._interval = FIRST_INTERVAL_SECONDS
            self._set(self.most)
            return
        self._interval = INTERVAL_SECONDS
        elapsed = now - last[0]
        others = ((busy - last[1]) - (own - last[2])) / elapsed
        threads = threads_for(len(self._cpus), others, self.most)
        # fewer only when two readings in a row say so: a process that just finished its
        # work (llama.cpp's threads spin a while after a decode) is not a load
        dropping = threads < self.threads
        if not dropping or self._dropping:
            self._set(threads)
        self._dropping = dropping

    def _set(self, threads: int) -> None:
        if threads != self.threads:
            self.threads = threads
            self._apply(threads)

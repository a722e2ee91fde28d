"""How busy the CPU is: this process's share of one core, and the machine's share of all of them.

    process, machine = CpuUse(), MachineCpu()
    process.share()    # 0.93: this process (all its threads) used 93 % of a core lately
    machine.share()    # 0.98: the machine's cores were 98 % busy lately (0.0 where unknown)

Each is measured per window of ``window_s``: a read after a window ended starts the next one,
so reading often costs (almost) nothing. The task runner uses both to yield to submits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

#: Linux's CPU counters; elsewhere the machine's share reads as 0.0 (unknown).
PROC_STAT = Path("/proc/stat")


class _Windowed:
    """A rate over wall time, per window: (counter now - counter then) / (wall now - wall then)."""

    def __init__(self, window_s: float, wall: Callable[[], float]) -> None:
        self.window_s = window_s
        self._wall = wall
        self._at = wall()
        self._share = 0.0

    def share(self) -> float:
        now = self._wall()
        if now - self._at >= self.window_s:
            self._share = self._measure(now - self._at)
            self._at = now
        return self._share

    def _measure(self, elapsed: float) -> float:
        raise NotImplementedError


class CpuUse(_Windowed):
    """This process's CPU time (all threads) over wall time: 1.0 is one core, all the time."""

    def __init__(
        self,
        window_s: float = 0.1,
        *,
        wall: Callable[[], float] = time.perf_counter,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        super().__init__(window_s, wall)
        self._cpu = cpu
        self._used = cpu()

    def _measure(self, elapsed: float) -> float:
        used = self._cpu()
        share, self._used = (used - self._used) / elapsed, used
        return share


class MachineCpu(_Windowed):
    """The busy share of all the machine's cores, from /proc/stat's first line (1.0: no core idle).

    ``read`` returns that line's counters: user, nice, system, idle, iowait, irq, softirq, steal…
    (None where there is no such file).
    """

    def __init__(
        self,
        window_s: float = 0.1,
        *,
        wall: Callable[[], float] = time.perf_counter,
        read: Callable[[], list[int] | None] | None = None,
    ) -> None:
        super().__init__(window_s, wall)
        self._read = read or read_proc_stat
        self._last = self._read()

    def _measure(self, elapsed: float) -> float:
        counters = self._read()
        if counters is None or self._last is None:
            return 0.0
        deltas = [now - then for now, then in zip(counters, self._last, strict=False)]
        self._last = counters
        total = sum(deltas[:8])  # guest times are counted inside user and nice already
        idle = sum(deltas[3:5])  # idle and iowait
        return 1.0 - idle / total if total > 0 else 0.0


def read_proc_stat() -> list[int] | None:
    try:
        with PROC_STAT.open() as stat:
            first = stat.readline().split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    return [int(value) for value in first[1:]]

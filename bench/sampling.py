"""The gateway's memory and CPU from /proc, and py-spy profiles."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from common import CLK_TCK


def process_tree(root: int) -> list[int]:
    """root and all its descendants (uvicorn --workers forks; the workers hold the memory)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            # Split after the last ')' because the command name may itself hold spaces or parens.
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def box_cpu_ticks() -> tuple[int, int]:
    """The whole machine's (busy, total) CPU ticks since boot, from /proc/stat: two readings
    give how busy every core was in between, whoever used them (gateway, database, client)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and iowait
    return sum(fields) - idle, sum(fields)


def busy_pct(before: tuple[int, int], after: tuple[int, int]) -> float:
    busy, total = after[0] - before[0], after[1] - before[1]
    return round(100 * busy / total, 1) if total else 0.0


class RssSampler:
    """Samples a process tree's RSS every 100 ms in a thread; ``take_peak()`` reads and resets."""

    def __init__(self, root: int, interval_s: float = 0.1) -> None:
        self.root, self.interval_s = root, interval_s
        self.pids = process_tree(root)
        self._peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def _loop(self) -> None:
        last_scan = time.monotonic()
        while not self._stop.wait(self.interval_s):
            # Rescanning /proc every tick would steal CPU from the load on a 2-core box.
            if time.monotonic() - last_scan > 1.0:
                self.pids, last_scan = process_tree(self.root), time.monotonic()
            rss = rss_bytes(self.pids)
            with self._lock:
                self._peak = max(self._peak, rss)

    def take_peak(self) -> int:
        with self._lock:
            peak, self._peak = max(self._peak, rss_bytes(self.pids)), 0
        return peak

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


# --------------------------------------------------------------------------- profiling


def start_profile(pid: int, out: Path, py_spy: str) -> subprocess.Popen[bytes]:
    """py-spy on the gateway until stopped; --nonblocking so sampling barely perturbs the load."""
    cmd = [
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--function",
        "--nonblocking",
        "--subprocesses",
        "--rate",
        "100",
        "--output",
        str(out),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def stop_profile(proc: subprocess.Popen[bytes]) -> None:
    # SIGINT is py-spy's "stop and write the file"; anything stronger would lose the samples.
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    if proc.returncode != 0 and proc.stderr is not None:
        print(f"py-spy exited {proc.returncode}: {proc.stderr.read().decode(errors='replace')[-300:]}")


def summarize_profile(path: Path, top: int = 12) -> dict[str, list[tuple[str, float]]]:
    """Share of busy samples per frame: where the time is spent (self) and under what (inclusive)."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            total += count
            own[frames[-1]] = own.get(frames[-1], 0) + count
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + count

    def ranked(counts: dict[str, int], keep: str = "") -> list[tuple[str, float]]:
        # The CLI entry frames sit under every sample; they would only crowd out the real rows.
        rows = [
            (f, round(100 * c / total, 1))
            for f, c in counts.items()
            if keep in f and "imagegate/cli/" not in f and f != "<module> (imagegate:1)"
        ]
        return sorted(rows, key=lambda row: -row[1])[:top]

    if not total:
        return {}
    # Inclusive time is only telling inside the gateway's own code; the framework frames are at 100%.
    return {"self": ranked(own), "imagegate_inclusive": ranked(inclusive, "(imagegate/")}

"""Running `hey` against a URL and reading its report."""

from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class HeyResult:
    total_s: float = 0.0
    responses: int = 0
    ok: int = 0
    #: Transport errors (refused, reset, client timeout) — hey counts these apart from statuses.
    errors: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    percentiles_s: dict[str, float] = field(default_factory=dict)
    bytes_per_request: int = 0

    @property
    def ok_rps(self) -> float:
        # hey's own Requests/sec counts failed requests too, so a fast 500 would look like speed.
        return self.ok / self.total_s if self.total_s > 0 else 0.0

    @property
    def failures(self) -> int:
        return self.errors + (self.responses - self.ok)

    def pct(self, p: int) -> float | None:
        return self.percentiles_s.get(str(p))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok_rps": round(self.ok_rps, 1), "failures": self.failures}


def parse_hey(text: str) -> HeyResult:
    """Parse hey's default summary output (the CSV mode drops transport errors entirely)."""
    res = HeyResult()
    if m := re.search(r"Total:\s+([\d.]+) secs", text):
        res.total_s = float(m.group(1))
    if m := re.search(r"Size/request:\s+(\d+) bytes", text):
        res.bytes_per_request = int(m.group(1))
    for m in re.finditer(r"^\s+(\d+)% in ([\d.]+) secs", text, re.M):
        res.percentiles_s[m.group(1)] = float(m.group(2))
    status_part, _, error_part = text.partition("Error distribution:")
    for m in re.finditer(r"^\s+\[(\d{3})\]\s+(\d+) responses", status_part, re.M):
        res.status_counts[m.group(1)] = int(m.group(2))
    for m in re.finditer(r"^\s+\[(\d+)\]\s+(.*)$", error_part, re.M):
        res.errors += int(m.group(1))
        if len(res.error_samples) < 5:
            res.error_samples.append(f"{m.group(1)}x {m.group(2)[:200]}")
    res.responses = sum(res.status_counts.values())
    res.ok = res.status_counts.get("200", 0)
    return res


def run_hey(
    url: str,
    body: str,
    key: str,
    concurrency: int,
    *,
    duration_s: float | None = None,
    requests: int | None = None,
    timeout_s: int = 30,
) -> HeyResult:
    cmd = [
        "hey",
        "-m",
        "POST",
        "-T",
        "application/json",
        "-H",
        f"Authorization: Bearer {key}",
        "-d",
        body,
        "-c",
        str(concurrency),
        "-t",
        str(timeout_s),
    ]
    if requests is not None:
        cmd += ["-n", str(requests)]
        # Bounded anyway: every request times out after timeout_s, plus slack for connecting.
        limit: float = timeout_s * (requests // concurrency + 1) + 60
    else:
        assert duration_s is not None
        cmd += ["-z", f"{duration_s:g}s"]
        limit = duration_s + timeout_s + 60
    proc = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=limit, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"hey exited {proc.returncode}: {proc.stderr.strip()[:500]}")
    return parse_hey(proc.stdout)

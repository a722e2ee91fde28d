"""Load benchmark: the fake upstream alone, then the same load through `imagegate serve`.

Starts ``bench/fake_upstream.py`` and the gateway as subprocesses on free loopback ports, runs
``hey`` per scenario against each, samples the gateway's RSS and CPU from /proc, prints a table
with the targets and writes ``bench/results/latest.json``.

Usage::

    bench/run.sh                                   # all scenarios, installs hey if missing
    .venv/bin/python bench/run.py --scenarios small --duration 5
    .venv/bin/python bench/run.py --direct-only    # measure the fake upstream only

Everything stays on 127.0.0.1 and every load run is bounded in count and time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
LOOPBACK = "127.0.0.1"
MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
GEN_PATH = "/v1/images/generations"
# Loopback traffic must never be routed through a proxy the environment happens to define.
NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Scenario:
    name: str
    model: str
    concurrency: int
    #: Requests in total (``hey -n``) when set; otherwise the run lasts ``--duration`` seconds.
    requests: int | None = None
    warmup_s: float = 0.0
    #: Per-request client timeout; generous so slowness shows up as latency, not as errors.
    timeout_s: int = 30
    #: Extra request fields (streaming cases).
    extra: tuple[tuple[str, Any], ...] = ()


SCENARIOS: dict[str, Scenario] = {
    "small": Scenario("small", "bench-small", concurrency=50, warmup_s=2.0),
    "4mb": Scenario("4mb", "bench-4mb", concurrency=20, warmup_s=2.0),
    "slow": Scenario("slow", "bench-slow", concurrency=1000, requests=1000),
    # Four 4 MB images per request (three partials and the final one) relayed as SSE.
    "stream": Scenario(
        "stream",
        "bench-stream",
        concurrency=10,
        warmup_s=2.0,
        extra=(("stream", True), ("partial_images", 3)),
    ),
    # The same stream with the final image only: peak memory should match "stream" if the gateway
    # holds one event at a time rather than whole streams.
    "stream1": Scenario(
        "stream1",
        "bench-stream",
        concurrency=10,
        warmup_s=2.0,
        extra=(("stream", True), ("partial_images", 0)),
    ),
}


# --------------------------------------------------------------------------- hey


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


# --------------------------------------------------------------------------- /proc sampling


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


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def raise_nofile_limit() -> int:
    """1000 concurrent clients need ~2000 sockets in the gateway; children inherit this limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def clean_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("IMAGEGATE_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env["NO_PROXY"] = env["no_proxy"] = f"{LOOPBACK},localhost"
    return env


class Procs:
    """Owns the subprocesses; each runs in its own session so the whole group can be ended."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        self.stop(*self.procs)

    def stop(self, *procs: subprocess.Popen[bytes]) -> None:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            # Workers of a group whose leader has exited would otherwise outlive the bench.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def http(
    method: str, url: str, body: bytes | None = None, key: str | None = None, timeout: float = 10
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with NO_PROXY_OPENER.open(req, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{base} exited with {proc.returncode}:\n{tail(log)}")
        with contextlib.suppress(OSError):
            if http("GET", f"{base}/healthz", timeout=2)[0] == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{base}/healthz not ready after {timeout_s:g}s:\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def gateway_toml(upstream_port: int, models: list[str], billed: bool = False) -> str:
    quoted = ", ".join(f'"{m}"' for m in models)
    parts = [
        "[[channels]]",
        'name = "bench"',
        'provider = "openai"',
        f'base_url = "http://{LOOPBACK}:{upstream_port}/v1"',
        'api_key = "bench"',
        f"models = [{quoted}]",
        "timeout_s = 60",
    ]
    for model in models:
        parts += ["", f'[models."{model}"]', 'sizes = ["1024x1024", "auto"]']
        if billed:
            parts.append("price = { per_image = { default = 0.0001 } }")
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- the bench


@dataclass
class Target:
    name: str
    value: float | None
    limit: float
    higher_is_better: bool
    unit: str

    @property
    def passed(self) -> bool:
        if self.value is None:
            return False
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit


@dataclass
class ScenarioResult:
    scenario: Scenario
    direct: HeyResult | None = None
    gateway: HeyResult | None = None
    gateway_peak_rss_mb: float | None = None
    gateway_cpu_ms_per_req: float | None = None
    error: str | None = None
    targets: list[Target] = field(default_factory=list)
    profile: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.error is None and all(t.passed for t in self.targets)


def evaluate(r: ScenarioResult) -> list[Target]:
    gw, d = r.gateway, r.direct
    if gw is None:
        return []
    if r.scenario.name == "small":
        return [
            Target("gateway req/s", gw.ok_rps, 1000, True, "req/s"),
            Target("gateway CPU per request", r.gateway_cpu_ms_per_req, 1.0, False, "ms"),
        ]
    if r.scenario.name == "4mb":
        ratio = gw.ok_rps / d.ok_rps if d and d.ok_rps else None
        return [
            Target("gateway/direct req/s", ratio, 0.5, True, "x"),
            Target("gateway peak RSS", r.gateway_peak_rss_mb, 300, False, "MB"),
        ]
    if r.scenario.name.startswith("stream"):
        # No throughput target is set for streams. Ten streams of four 5.6 MB events held whole
        # would be 224 MB of payload on top of ~110 MB idle; relayed event by event they stay
        # near the one-event figure (compare "stream1").
        return [Target("gateway peak RSS", r.gateway_peak_rss_mb, 400, False, "MB")]
    if r.scenario.name == "slow":
        p50, p99 = gw.pct(50), gw.pct(99)
        missing = (r.scenario.requests or 0) - gw.ok
        return [
            Target("p50 latency", p50, 5.25, False, "s"),
            Target("p99 latency", p99, 6.0, False, "s"),
            Target("errors (non-200, transport, missing)", float(max(missing, gw.failures)), 0, False, ""),
            Target("gateway peak RSS", r.gateway_peak_rss_mb, 200, False, "MB"),
        ]
    return []


def smoke(base: str, model: str, key: str) -> str:
    """One request first, so a broken route fails loudly instead of as 100k identical errors."""
    body = json.dumps({"model": model, "prompt": "bench", "size": "1024x1024", "response_format": "b64_json"})
    status, raw = http("POST", base + GEN_PATH, body.encode(), key, timeout=30)
    if status != 200:
        return f"HTTP {status}: {raw[:300]!r}"
    try:
        item = json.loads(raw)["data"][0]
        return "" if item.get("b64_json") else f"no b64_json in {raw[:300]!r}"
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return f"unexpected body ({exc}): {raw[:300]!r}"


def run_scenario(
    sc: Scenario,
    upstream: str,
    gateway: str | None,
    key: str,
    duration_s: float,
    sampler: RssSampler | None,
    py_spy: str | None = None,
) -> ScenarioResult:
    res = ScenarioResult(sc)
    body = json.dumps(
        {
            "model": sc.model,
            "prompt": "bench",
            "size": "1024x1024",
            "response_format": "b64_json",
            **dict(sc.extra),
        }
    )

    def load(base: str, measure: bool) -> HeyResult:
        url = base + GEN_PATH
        if sc.warmup_s:
            run_hey(url, body, key, sc.concurrency, duration_s=sc.warmup_s, timeout_s=sc.timeout_s)
        cpu0 = 0.0
        if sampler and measure:
            sampler.take_peak()  # start this scenario's peak from the current RSS
            cpu0 = cpu_seconds(sampler.pids)
        prof = None
        if sampler and measure and py_spy:
            prof_path = RESULTS_DIR / f"profile-{sc.name}.txt"
            prof = start_profile(sampler.root, prof_path, py_spy)
        try:
            out = run_hey(
                url,
                body,
                key,
                sc.concurrency,
                duration_s=None if sc.requests else duration_s,
                requests=sc.requests,
                timeout_s=sc.timeout_s,
            )
        finally:
            if prof is not None:
                stop_profile(prof)
        if prof is not None:
            res.profile = summarize_profile(prof_path)
        if sampler and measure:
            res.gateway_peak_rss_mb = sampler.take_peak() / MIB
            if out.ok:
                res.gateway_cpu_ms_per_req = (cpu_seconds(sampler.pids) - cpu0) * 1000 / out.ok
        return out

    print(f"[{sc.name}] direct: {sc.model}, c={sc.concurrency}", flush=True)
    res.direct = load(upstream, measure=False)
    if gateway is not None:
        if problem := smoke(gateway, sc.model, key):
            res.error = f"smoke request failed: {problem}"
            return res
        print(f"[{sc.name}] gateway: {sc.model}, c={sc.concurrency}", flush=True)
        res.gateway = load(gateway, measure=True)
        res.targets = evaluate(res)
    return res


# --------------------------------------------------------------------------- report


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.1f}"


def print_report(results: list[ScenarioResult]) -> None:
    head = (
        "scenario",
        "direct req/s",
        "gw req/s",
        "ratio",
        "direct p50/p99 ms",
        "gw p50/p99 ms",
        "errors d/gw",
        "gw peak RSS MB",
        "gw CPU ms/req",
    )
    rows = [head]
    for r in results:
        d, g = r.direct, r.gateway
        ratio = f"{g.ok_rps / d.ok_rps:.2f}" if d and g and d.ok_rps else "-"
        rows.append(
            (
                r.scenario.name,
                f"{d.ok_rps:.0f}" if d else "-",
                f"{g.ok_rps:.0f}" if g else "-",
                ratio,
                f"{ms(d.pct(50))}/{ms(d.pct(99))}" if d else "-",
                f"{ms(g.pct(50))}/{ms(g.pct(99))}" if g else "-",
                f"{d.failures if d else '-'}/{g.failures if g else '-'}",
                f"{r.gateway_peak_rss_mb:.0f}" if r.gateway_peak_rss_mb is not None else "-",
                f"{r.gateway_cpu_ms_per_req:.3f}" if r.gateway_cpu_ms_per_req is not None else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    print()
    for row in rows:
        print(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    print()
    for r in results:
        if r.error:
            print(f"{r.scenario.name:6} ERROR  {r.error}")
        for s in (r.direct, r.gateway):
            for sample in s.error_samples if s else []:
                print(f"{r.scenario.name:6}        hey error: {sample}")
        for t in r.targets:
            op = ">=" if t.higher_is_better else "<="
            value = "-" if t.value is None else f"{t.value:.4g}"
            verdict = "PASS" if t.passed else "FAIL"
            print(f"{r.scenario.name:6} {verdict}  {t.name}: {value} {op} {t.limit:g} {t.unit}")
    for r in results:
        for kind, top in r.profile.items():
            print(f"\n[{r.scenario.name}] py-spy, % of busy samples ({kind}):")
            for frame, pct in top:
                print(f"  {pct:5.1f}%  {frame}")


def write_json(results: list[ScenarioResult], meta: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    doc = {
        "meta": meta,
        "passed": all(r.passed for r in results),
        "scenarios": {
            r.scenario.name: {
                "config": asdict(r.scenario),
                "direct": r.direct.to_json() if r.direct else None,
                "gateway": r.gateway.to_json() if r.gateway else None,
                "gateway_peak_rss_mb": r.gateway_peak_rss_mb,
                "gateway_cpu_ms_per_req": r.gateway_cpu_ms_per_req,
                "error": r.error,
                "targets": [{**asdict(t), "passed": t.passed} for t in r.targets],
                "profile_top_pct": r.profile,
                "passed": r.passed,
            }
            for r in results
        },
    }
    path = RESULTS_DIR / "latest.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per timed run (default 10)")
    p.add_argument(
        "--scenarios", default="small,4mb,slow,stream", help="comma list of: " + ",".join(SCENARIOS)
    )
    p.add_argument("--keep-going", action="store_true", help="run every scenario even after one fails")
    p.add_argument("--workers", type=int, default=1, help="imagegate serve --workers")
    p.add_argument("--direct-only", action="store_true", help="measure the fake upstream only")
    p.add_argument(
        "--billed",
        action="store_true",
        help="call the gateway with a quota-limited key and priced models (every request held and charged)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="run py-spy on the gateway during each measured run (results/profile-<scenario>.txt); "
        "it shares the CPUs, so figures from a profiled run read a little low",
    )
    p.add_argument(
        "--imagegate",
        default=str(Path(sys.executable).parent / "imagegate"),
        help="the imagegate executable (default: the one beside this Python)",
    )
    args = p.parse_args(argv)
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if unknown := [s for s in args.scenario_list if s not in SCENARIOS]:
        p.error(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    if not 0 < args.duration <= 600:
        p.error("--duration must be in (0, 600]")
    return args


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the finally that ends the subprocesses always runs."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("hey") is None:
        print("hey not found: run bench/run.sh (it installs it) or apt-get install hey", file=sys.stderr)
        return 2
    py_spy = None
    if args.profile:
        py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
        if py_spy is None:
            print("--profile needs py-spy: .venv/bin/pip install py-spy", file=sys.stderr)
            return 2
    nofile = raise_nofile_limit()
    if "slow" in args.scenario_list and nofile < 4096:
        print(f"warning: open-file limit is {nofile}; the slow scenario needs ~4096", file=sys.stderr)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    load1 = os.getloadavg()[0]
    if load1 > 0.5 * (os.cpu_count() or 1):
        # Client, upstream and gateway already share the box; anything else running skews every figure.
        print(f"warning: load average is {load1:.2f} before starting; figures will read low", file=sys.stderr)
    key = "sk-bench-" + secrets.token_urlsafe(24)
    models = list(dict.fromkeys(sc.model for sc in SCENARIOS.values()))
    procs = Procs()
    results: list[ScenarioResult] = []
    meta: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpus": os.cpu_count(),
        "duration_s": args.duration,
        "workers": args.workers,
        "nofile": nofile,
        "loadavg_1m_before": round(load1, 2),
        "direct_only": args.direct_only,
        "billed": args.billed,
    }
    with sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="imagegate-bench-") as tmp:
        try:
            env = clean_env()
            up_port = free_port()
            up_log = RESULTS_DIR / "upstream.log"
            up = procs.start(
                [sys.executable, str(BENCH_DIR / "fake_upstream.py"), "--port", str(up_port)], env, up_log
            )
            upstream = f"http://{LOOPBACK}:{up_port}"
            wait_healthy(upstream, up, up_log)
            for name in args.scenario_list:
                # A fresh gateway per scenario: peak RSS is then each scenario's own, not the
                # high-water mark an earlier scenario left in the heap.
                gateway: str | None = None
                sampler: RssSampler | None = None
                gw_proc: subprocess.Popen[bytes] | None = None
                gw_key = key
                if not args.direct_only:
                    workdir = Path(tmp) / name
                    workdir.mkdir()
                    gateway, gw_proc, gw_key = start_gateway(args, procs, env, workdir, up_port, models, key)
                    sampler = RssSampler(gw_proc.pid)
                    meta.setdefault("gateway_idle_rss_mb", {})[name] = round(rss_bytes(sampler.pids) / MIB, 1)
                try:
                    with sampler or contextlib.nullcontext():
                        r = run_scenario(
                            SCENARIOS[name], upstream, gateway, gw_key, args.duration, sampler, py_spy
                        )
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    r = ScenarioResult(SCENARIOS[name], error=str(exc))
                finally:
                    if gw_proc is not None:
                        procs.stop(gw_proc)
                results.append(r)
                if not r.passed and not args.keep_going and not args.direct_only:
                    print(f"[{name}] did not pass; stopping (use --keep-going to run the rest)")
                    break
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            meta["interrupted"] = True
        finally:
            procs.stop_all()
    meta["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    if results:
        print_report(results)
        print(f"\nresults: {write_json(results, meta)}")
    return 0 if results and all(r.passed for r in results) else 1


def start_gateway(
    args: argparse.Namespace,
    procs: Procs,
    base_env: dict[str, str],
    tmp: Path,
    up_port: int,
    models: list[str],
    key: str,
) -> tuple[str, subprocess.Popen[bytes], str]:
    config = tmp / "imagegate.toml"
    config.write_text(gateway_toml(up_port, models, billed=args.billed))
    env = {
        **base_env,
        "IMAGEGATE_DATA_DIR": str(tmp / "data"),
        "IMAGEGATE_ADMIN_KEY": key,
        "IMAGEGATE_RESPONSE_FORMAT": "b64_json",
        "IMAGEGATE_DEMO": "1",
        "IMAGEGATE_LOG_LEVEL": "INFO",  # the per-request log line is part of the cost
    }
    (tmp / "data").mkdir()  # `serve` migrates the fresh SQLite database in here itself
    port = free_port()
    log = RESULTS_DIR / "gateway.log"
    cmd = [args.imagegate, "serve", "--host", LOOPBACK, "--port", str(port), "--config", str(config)]
    if args.workers > 1:
        cmd += ["--workers", str(args.workers)]
    proc = procs.start(cmd, env, log)
    base = f"http://{LOOPBACK}:{port}"
    wait_healthy(base, proc, log)
    if args.billed:
        key = create_billed_key(args, env, config)
    return base, proc, key


def create_billed_key(args: argparse.Namespace, env: dict[str, str], config: Path) -> str:
    """A key with a (large) quota: every request through it is held, settled and logged."""
    out = subprocess.run(
        [
            args.imagegate,
            "keys",
            "create",
            "--name",
            "bench",
            "--quota-usd",
            "1000000",
            "--config",
            str(config),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.strip().splitlines()[-1]


if __name__ == "__main__":
    sys.exit(main())

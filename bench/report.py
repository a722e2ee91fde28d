"""The printed table and the JSON results file."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from common import RESULTS_DIR
from hey import HeyResult
from scenarios import ScenarioResult


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
        if r.litellm is not None:
            print(proxy_line(r, "LiteLLM proxy", r.litellm, r.litellm_cpu_ms_per_req))
    for r in results:
        if r.floor is not None:
            print(proxy_line(r, "floor proxy", r.floor, r.floor_cpu_ms_per_req, floor_over_direct(r)))
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


def proxy_line(
    r: ScenarioResult, label: str, out: HeyResult, cpu_ms: float | None, after_p99: str = ""
) -> str:
    """One line for the same load through another proxy (LiteLLM's, the floor)."""
    cpu = f"{cpu_ms:.3f}" if cpu_ms is not None else "-"
    return (
        f"{r.scenario.name:6} {label}: {out.ok_rps:.0f} req/s, "
        f"p50/p99 {ms(out.pct(50))}/{ms(out.pct(99))} ms{after_p99}, "
        f"errors {out.failures}, CPU {cpu} ms/req"
    )


def floor_over_direct(r: ScenarioResult) -> str:
    """The floor's p50 over the direct p50, for a scenario judged that way (slow)."""
    floor_p50, direct_p50 = r.floor.pct(50) if r.floor else None, r.direct.pct(50) if r.direct else None
    if r.scenario.name != "slow" or floor_p50 is None or direct_p50 is None:
        return ""
    return f" ({floor_p50 - direct_p50:+.3f} s over direct)"


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
                "litellm": r.litellm.to_json() if r.litellm else None,
                "litellm_cpu_ms_per_req": r.litellm_cpu_ms_per_req,
                "floor": r.floor.to_json() if r.floor else None,
                "floor_cpu_ms_per_req": r.floor_cpu_ms_per_req,
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

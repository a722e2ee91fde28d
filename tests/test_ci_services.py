"""Under CI=true a missing PostgreSQL, Redis or seed folder fails the run; elsewhere it skips.

A CI machine whose services failed to start used to skip about 90 tests and pass. These tests run
pytest on a few service-backed tests with every service pointed at nothing, with and without CI.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parents[1]
# One test of each kind that needs a service or the seeds.
NEEDS_SERVICES = [
    "tests/limits/test_redis.py::test_two_limiters_share_one_window",
    "tests/db/test_groups.py::test_bad_values_are_refused[postgresql-fields0]",
    "tests/test_seeds.py::test_extractor_finds_every_seed_script",
]


def run_without_services(ci: str | None, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env |= {
        "IMAGEGATE_TEST_REDIS": "redis://127.0.0.1:1/0",
        "IMAGEGATE_TEST_POSTGRES": "postgresql://postgres@127.0.0.1:1/postgres",
        "IMAGEGATE_SEEDS_DIR": str(tmp_path / "no-seeds"),
        "PYTHONPATH": str(ROOT),
    }
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *NEEDS_SERVICES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def outcome_counts(output: str) -> dict[str, int]:
    summary = output.strip().splitlines()[-1]
    return {word: int(count) for count, word in re.findall(r"(\d+) (\w+)", summary)}


@pytest.mark.slow  # a pytest subprocess: seconds of imports
def test_missing_services_fail_under_ci(tmp_path: Path) -> None:
    result = run_without_services("true", tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    counts = outcome_counts(result.stdout)
    assert counts.get("failed", 0) + counts.get("errors", counts.get("error", 0)) == 3, result.stdout
    assert "skipped" not in counts, result.stdout
    for what in ("Redis not reachable", "PostgreSQL not reachable", "seed documents not found"):
        assert what in result.stdout, result.stdout


@pytest.mark.slow
def test_missing_services_skip_outside_ci(tmp_path: Path) -> None:
    result = run_without_services(None, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert outcome_counts(result.stdout) == {"skipped": 3}, result.stdout


@pytest.mark.parametrize("value", ["true", "TRUE", "1"])
def test_the_helper_fails_in_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="no redis"):
        service_missing("no redis")


@pytest.mark.parametrize("value", [None, "", "false"])
def test_the_helper_skips_elsewhere(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="no redis"):
        service_missing("no redis")


def test_every_service_skip_goes_through_the_helper() -> None:
    """A new ``pytest.skip``/``skipif`` for a service would skip silently in CI again."""
    offenders = []
    for path in (ROOT / "tests").rglob("*.py"):
        if path.name in ("conftest.py", "test_ci_services.py") and path.parent == ROOT / "tests":
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"pytest\.skip\(|\.skipif\(", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], f"skip through tests.conftest.service_missing instead: {offenders}"

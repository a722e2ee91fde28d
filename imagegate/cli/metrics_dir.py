"""The per-run folder where `serve --workers N` workers write their Prometheus values.

prometheus_client's multiprocess mode reads PROMETHEUS_MULTIPROC_DIR when it is imported, so the
variable is set here, in the serve process, before any worker is started. The folder starts
empty each run: values of an earlier run (or of workers long gone) would be summed in otherwise.
A folder the operator named is emptied; one made here is removed when serve exits.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def prepare(workers: int) -> Path | None:
    """Set up multiprocess metrics for ``workers`` > 1; one worker keeps plain in-memory metrics."""
    if workers <= 1:
        return None
    named = os.environ.get(VARIABLE)
    if named:
        folder = Path(named)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink(missing_ok=True)
        return folder
    folder = Path(tempfile.mkdtemp(prefix="imagegate-metrics-"))
    os.environ[VARIABLE] = str(folder)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder

"""Constants the benchmark modules share."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
LOOPBACK = "127.0.0.1"
MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
GEN_PATH = "/v1/images/generations"
# Loopback traffic must never be routed through a proxy the environment happens to define.
NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

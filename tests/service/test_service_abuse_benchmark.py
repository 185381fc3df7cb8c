"""benchmarks/service_abuse.py cannot rot: its quick run (one small keyless case on a real server)
answers in the table's own terms, and the table reads its rows back as the deploy guide shows them."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

from service_helpers import REPO

SCRIPT = REPO / "benchmarks" / "service_abuse.py"


def _module():
    spec = importlib.util.spec_from_file_location("service_abuse", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_quick_run_measures_a_real_server_under_the_stated_limits():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", "-"],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2"),  # the session's private home
    )
    assert out.returncode == 0, out.stderr[-2000:]
    [row] = json.loads(out.stdout)
    assert row["case"] == "3" and row["codes"] == ["401"] * 4 and row["server_alive"]
    assert 0 <= row["rss_growth_mb"] < 300 and row["met"] is True
    assert "--max-pixels 25000000" in row["command"] and "--max-frames 150" in row["command"]


def test_the_table_shows_each_case_with_its_target():
    m = _module()
    rows = [
        {"case": "2", "what": "40 photos", "codes": ["200", "503", "503"], "rss_growth_mb": 812.5,
         "figure": "rss_growth_mb", "target": 1024, "met": True, "log_growth_kb": 3.0},
        {"case": "5", "what": "idle", "codes": ["200"] * 5, "rss_growth_mb": 40.0, "figure": "healthz_s",
         "healthz_s": 2.5, "target": 1.0, "met": False, "log_growth_kb": 12.0},
    ]  # fmt: skip
    lines = m.table(rows).splitlines()
    assert lines[2] == "| 2 | 40 photos | 200 x1, 503 x2 | 812.5 MB |  | < 1024 MB | yes |"
    assert lines[3] == "| 5 | idle | 200 x5 | 40.0 MB | healthz_s = 2.5; log +12.0 KB | < 1.0 s | NO |"

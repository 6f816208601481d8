"""The scoring regression guard: ``bench/bench_scoring.py --quick --check`` (seconds) fails when the exact
search's time, as a ratio to a calibration kernel measured in the same process, is above 2.5 x the ratio
recorded in bench/ratios.json (and bench/RESULTS.md): a gross regression, not timing noise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_scoring_ratio_guard():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_scoring.py"), "--quick", "--check"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "quick.held" in proc.stdout and "quick.streamed" in proc.stdout and "recorded" in proc.stdout, proc.stdout

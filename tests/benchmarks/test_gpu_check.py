"""The GPU check script's steps run on the CPU at test size, so a lent GPU machine finds a script that works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_runs_every_step_on_the_cpu(tmp_path):
    out = tmp_path / "cpu_check.md"
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--cpu-only", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    report = out.read_text()
    assert "FAILED" not in report
    for section in ("## sweep", "## training", "## ddp", "## portability"):
        assert section in report
    assert "| exact | cpu (2 threads) | cpu (1 threads) | 4 | 0 | 0 |" in report
    assert "| all on the CPU (today) | 246 |" in report  # 41 tiles x 6 rate points
    assert "gloo, 4 steps: finished" in report

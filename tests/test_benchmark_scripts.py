"""The benchmark scripts run (their figures are for the README, not asserted here): a script that
cannot start goes unnoticed until someone needs its numbers."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_sg3_benchmark_prints_a_ratio_per_row():
    # each row runs in a spawned process (its StyleGAN3 path chosen before torch starts)
    r = subprocess.run([sys.executable, "sg3.py", "--rows", "1", "--steps", "1", "--warmup", "0"], cwd=BENCHMARKS,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = re.findall(r"^(SG2 baseline|SG3-T \(digits-sg3t\)) .* x\s*([\d.]+) SG2 cost$", r.stdout, re.M)
    assert [name for name, _ in rows] == ["SG2 baseline", "SG3-T (digits-sg3t)"], r.stdout
    assert float(rows[0][1]) == 1.0 and float(rows[1][1]) > 1.0

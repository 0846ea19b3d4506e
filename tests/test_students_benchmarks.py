"""The prepared GPU script runs end to end in its CPU smoke mode (tiny models), so it is not first run on the GPU."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_mfu_script_smoke(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_student_mfu.py"), "--smoke", "--hf",
                           "--out", str(tmp_path / "mfu.json")], capture_output=True, text=True, timeout=600,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "mfu.json").read_text())
    assert [(r["model"], r["impl"]) for r in rows] == [("dense-124M", "ours"), ("dense-124M", "transformers"),
                                                       ("moe-8x2", "ours")]
    assert all(r["tokens_per_s"] > 0 and "error" not in r for r in rows)

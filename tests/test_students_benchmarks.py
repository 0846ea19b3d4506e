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
    assert all("error" not in r and r["batch"] == 2 and r["seq"] == 64 for r in rows)
    for r in rows:  # tokens/s is batch x seq / step time (step_s is rounded to 0.1 ms); no peak on the CPU
        assert r["step_s"] > 0 and r["tokens_per_s"] == pytest.approx(2 * 64 / r["step_s"], rel=5e-3, abs=1)
        assert r["mfu"] is None and r["max_memory_gib"] is None
    # Both implementations of the dense student are the same model: the same parameter count.
    assert rows[0]["params_M"] == rows[1]["params_M"] and rows[0]["active_params_M"] == rows[0]["params_M"]
    assert rows[2]["active_params_M"] < rows[2]["params_M"]  # MoE: top-2 of 4 experts active

"""Smoke tests of benchmarks/mc_rollout.py and cnn_predict.py at toy size (timings not asserted)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "mc_rollout.py"


def test_mc_rollout_benchmark_reports_each_repeat_and_the_medians(tmp_path):
    out = tmp_path / "mc.json"
    args = ["--batch", "4", "--rollouts", "2", "--vocab", "50", "--small-cnn", "--repeats", "2",
            "--out", str(out)]
    subprocess.run([sys.executable, str(BENCH), *args], check=True, capture_output=True)
    report = json.loads(out.read_text())
    assert report["setting"]["continuations"] == 4 * 2 * 19
    assert report["setting"]["repeats"] == 2
    ratios = report["speedup_vs_reference_style_each_run"]
    assert len(ratios) == 2 and all(math.isfinite(r) and r > 0 for r in ratios)
    # two repeats: the ratio of the medians, (r1 + r2) / (b1 + b2), lies between r1/b1 and r2/b2
    median_ratio = report["speedup_vs_reference_style"]
    assert min(ratios) - 1e-9 <= median_ratio <= max(ratios) + 1e-9
    assert 0.0 <= report["mean_q_batched"] <= 1.0 and 0.0 <= report["mean_q_loop"] <= 1.0


def test_cnn_predict_benchmark_reports_both_paths(tmp_path):
    out = tmp_path / "cnn.json"
    bench = BENCH.with_name("cnn_predict.py")
    args = ["--rows", "64", "--vocab", "50", "--threads", "1", "--repeats", "1", "--out", str(out)]
    subprocess.run([sys.executable, str(bench), *args], check=True, capture_output=True)
    report = json.loads(out.read_text())
    for key in ("predict_convolution_s", "predict_tables_s", "predict_ratio",
                "convolutions_ratio", "gemm_gflops"):
        assert math.isfinite(report[key]) and report[key] > 0
    assert report["table_mib"] == pytest.approx(4 * 50 * 12_500 / 2**20)  # 4·V·Σ w·F_w bytes

"""experiments/judge_summary.py on hand-made judge and probe files: the per-seed table and the
paired differences it prints equal the values computed by hand, and bad input is one message
with exit code 2 (docs/results/cold_start.md, "Best-of-4 over 10 seeds")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments/judge_summary.py"


def _record(agree: float, rel: float, irr: float) -> dict:
    return {"agree": agree, "agree_rel": rel, "agree_irr": irr, "n": 100, "n_rel": 50}


def _write_seed(folder: Path, seed: int, c0_real: float, cf_real: float, c0_gen: float,
                cf_gen: float, unjudged: int = 0) -> Path:
    probe = folder / f"seed-{seed}.jsonl"
    probe.write_text(json.dumps({"real_cold_c0": _record(c0_real, 0.9, 0.5)}) + "\n")  # C_0 line
    judge = folder / f"judge-{seed}.jsonl"
    judge.write_text(json.dumps({
        "file": str(probe), "folds": 5, "real_cold_crossfit": _record(cf_real, 0.9, 0.5),
        "epoch 4, T0.7k4": {"c0": _record(c0_gen, 0.6, 0.9), "crossfit": _record(cf_gen, 0.7, 0.9),
                            "unjudged": unjudged}}) + "\n")
    return judge


def _run(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, files)], capture_output=True,
                          text=True, cwd=REPO)


def test_table_and_paired_differences_equal_hand_computed_values(tmp_path):
    judges = [_write_seed(tmp_path, 0, 0.70, 0.72, 0.82, 0.78),
              _write_seed(tmp_path, 1, 0.74, 0.73, 0.76, 0.82),
              _write_seed(tmp_path, 2, 0.72, 0.74, 0.85, 0.80)]
    result = _run(*judges)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "| 1 | 0.740 (0.90 / 0.50) | 0.730 (0.90 / 0.50) | 0.760 (0.60 / 0.90) | " \
           "0.820 (0.70 / 0.90) |" in out
    # C_0 generated: 0.82, 0.76, 0.85 -> mean 0.810, sd sqrt(0.0042 / 2) = 0.046; 2 of 3 >= 0.8
    assert "- C_0, generated: 0.810 ± 0.046" in out
    assert "≥ 0.8 on 2 of 3 seeds; mean − 0.8: +0.010" in out
    # cross-fitted generated − cross-fitted real: 0.06, 0.09, 0.06 -> mean +0.070
    assert "- cross-fitted, generated − cross-fitted, real: +0.070" in out
    # cross-fitted real − C_0 real: 0.02, −0.01, 0.02 -> mean +0.010
    assert "- cross-fitted, real − C_0, real: +0.010" in out


def test_bad_input_is_one_message_and_exit_2(tmp_path):
    good = _write_seed(tmp_path, 0, 0.70, 0.72, 0.80, 0.78)
    probe = tmp_path / "seed-0.jsonl"
    result = _run(probe)  # a probe file where a judge file is expected
    assert result.returncode == 2
    assert "expected a file named judge-<s>.jsonl" in result.stderr
    assert "Traceback" not in result.stderr

    unjudged = _write_seed(tmp_path, 1, 0.7, 0.7, 0.8, 0.8, unjudged=3)
    result = _run(good, unjudged)
    assert result.returncode == 2
    assert "3 generated queries were not judged" in result.stderr
    assert "Traceback" not in result.stderr

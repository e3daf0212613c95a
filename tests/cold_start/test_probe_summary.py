"""experiments/probe_summary.py on hand-made probe files: the per-cell summary and the paired
differences against another configuration (``--against``) equal the values computed by hand,
and bad input is one message with exit code 2 (docs/results/cold_start.md, "More data")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments/probe_summary.py"


def _record(agree: float) -> dict:
    return {"agree": agree, "agree_rel": 0.7, "agree_irr": 0.9, "n": 100, "n_rel": 50}


def _write_seed(folder: Path, seed: int, real: float, epoch: int, generated: float) -> Path:
    folder.mkdir(exist_ok=True)
    probe = folder / f"seed-{seed}.jsonl"
    probe.write_text(json.dumps({"real_cold_c0": _record(real)}) + "\n"
                     + json.dumps({"epoch": epoch, "T0.7k4": _record(generated)}) + "\n")
    return probe


def _run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, cwd=REPO)


def test_summary_and_paired_differences_against_another_configuration(tmp_path):
    new = [_write_seed(tmp_path / "new", s, r, 3, g)
           for s, r, g in [(0, 0.76, 0.84), (1, 0.78, 0.88), (2, 0.75, 0.83)]]
    old = [_write_seed(tmp_path / "old", s, r, 4, g)
           for s, r, g in [(0, 0.72, 0.80), (1, 0.74, 0.81), (2, 0.73, 0.78), (3, 0.7, 0.7)]]
    result = _run(*new, "--against", *old)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # 0.84, 0.88, 0.83: mean 0.850, sd sqrt(0.0014 / 2) = 0.026; all 3 reach 0.8
    assert "- epoch 3, T0.7k4: 0.850 ± 0.026" in out
    assert "≥ 0.8 on 3 of 3 seeds; mean − 0.8: +0.050" in out
    # paired on the seeds both hold (old seed 3 has no partner): 0.04, 0.07, 0.05 -> +0.053
    assert "seeds [0, 1, 2]" in out
    assert "- epoch 3, T0.7k4 − epoch 4, T0.7k4: +0.053" in out
    # the judges on the real cold queries: 0.04, 0.04, 0.02 -> +0.033
    assert "- real cold queries − theirs: +0.033" in out


def test_without_against_no_comparison_is_printed(tmp_path):
    probe = _write_seed(tmp_path / "new", 0, 0.76, 3, 0.84)
    result = _run(probe)
    assert result.returncode == 0, result.stderr
    assert "Against the other configuration" not in result.stdout


def test_bad_input_is_one_message_and_exit_2(tmp_path):
    wrong = tmp_path / "probe.jsonl"  # not named seed-<s>.jsonl
    wrong.write_text(json.dumps({"real_cold_c0": _record(0.7)}) + "\n")
    result = _run(wrong)
    assert result.returncode == 2
    assert "expected a file named seed-<s>.jsonl" in result.stderr
    assert "Traceback" not in result.stderr

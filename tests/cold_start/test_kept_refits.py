"""experiments/kept_refits.py on a hand-made ledger: per round it counts the cells whose refit
was kept (cls/best_epoch > 0) among those that recorded the round, never counts round 0 (C_0's
own fit) or a cell without the metric, and a bad compare file is one message with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments/kept_refits.py"


def _entry(folder: Path, condition: str, seed: int, best_epochs: list[float] | None) -> None:
    rounds = ([{"round": r, "cls/best_epoch": e} for r, e in enumerate(best_epochs)]
              if best_epochs is not None else [{"round": r, "cold/pr_auc": 0.8} for r in range(3)])
    path = folder / "ledger" / condition / f"seed-{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"user_attrs": {"condition": condition, "seed": seed,
                                               "rounds": rounds}}))


def _compare(folder: Path) -> Path:
    recipe = REPO / "recipes/cls_no_augment_crowdflower.yaml"
    path = folder / "study.yaml"
    path.write_text(f"name: study\nledger: ledger\nseeds: 3\nmetrics: [cold/pr_auc]\n"
                    f"conditions:\n  keep: {{recipe: {recipe}}}\n  old: {{recipe: {recipe}}}\n")
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=REPO)


def test_counts_kept_refits_per_round_from_the_ledger(tmp_path):
    _entry(tmp_path, "keep", 0, [2.0, 1.0, 0.0])  # round 0 (C_0, epoch 2) is never counted
    _entry(tmp_path, "keep", 1, [2.0, 0.0, 0.0])
    _entry(tmp_path, "keep", 2, [2.0, 2.0, 1.0])
    _entry(tmp_path, "old", 0, None)  # a study that did not list cls/best_epoch
    result = _run(str(_compare(tmp_path)))
    assert result.returncode == 0, result.stderr
    rows = {line.split("|")[1].strip(): line for line in result.stdout.splitlines()[2:]}
    assert "| 3 | 1: 2 / 3, 2: 1 / 3 | 3 / 6 |" in rows["`keep`"]
    assert "| 1 | – | not recorded |" in rows["`old`"]


def test_a_missing_compare_file_is_one_message_and_exit_2(tmp_path):
    result = _run(str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert "absent.yaml" in result.stderr and "Traceback" not in result.stderr

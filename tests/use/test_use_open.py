"""`advx.use.open_run` and `loop.keep_best` on the core's toy components."""

from __future__ import annotations

import json

import pytest
import torch
from advx.errors import ConfigError
from advx.rundir import RunDir
from advx.runner import run_recipe
from advx.use import evaluate_run, open_run


def _rounds(run_dir) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == "round"]


@pytest.mark.parametrize("mode", ["max", "min"])
def test_keep_best_keeps_the_best_checkpoint_only_when_asked(toy_pm, toy_recipe, tmp_path, mode):
    kept = {}
    for keep_best in (True, False):
        run = run_recipe(toy_recipe, ["loop.keep_checkpoints=1", f"loop.keep_best={keep_best}",
                                      f"loop.monitor_mode={mode}", "loop.rounds=4"],
                         run_dir=tmp_path / f"{mode}-{keep_best}").run_dir
        kept[keep_best] = RunDir(run).checkpoint_rounds()
    rows = _rounds(tmp_path / f"{mode}-True")
    pick = max if mode == "max" else min
    best = pick(rows, key=lambda r: r["eval/p_real"])["round"]
    assert kept[True] == sorted({best, 4})
    assert kept[False] == [4]


def test_open_run_loads_the_checkpoint_weights(toy_pm, toy_recipe, tmp_path):
    run = run_recipe(toy_recipe, ["loop.keep_checkpoints=0"], run_dir=tmp_path / "r").run_dir
    saved = torch.load(run / "checkpoints/round-2/generator.pt", weights_only=False)
    with open_run(run, 2) as opened:
        assert opened.round == 2
        assert torch.equal(opened.components.generator.model.logits, saved["logits"])
        scratch = opened.scratch
        assert scratch is not None and scratch.exists()
    assert not scratch.exists()
    with open_run(run) as opened:  # no round: the newest
        assert opened.round == 3


def test_open_run_after_an_extended_resume(toy_pm, toy_recipe, tmp_path):
    """Checkpoints written before `--resume loop.rounds=5` still open (resumable keys)."""
    run = run_recipe(toy_recipe, ["loop.keep_checkpoints=0"], run_dir=tmp_path / "r").run_dir
    run_recipe(resume=run, overrides=["loop.rounds=5"])
    out, record = evaluate_run(run, 2)
    assert record["round"] == 2 and out.parent == run / "evals"
    again = evaluate_run(run, 2, name="again")[1]
    assert again["metrics"] == record["metrics"]
    assert record["metrics"]["eval/p_real"] == _rounds(run)[2]["eval/p_real"]


def test_open_run_refuses_a_foreign_recipe(toy_pm, toy_recipe, tmp_path):
    run = run_recipe(toy_recipe, [], run_dir=tmp_path / "r").run_dir
    text = (run / "recipe.yaml").read_text().replace("beta: 0.05", "beta: 0.7")
    (run / "recipe.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"reward\.beta is 0\.7 there but 0\.05"):
        open_run(run)


def test_the_toy_best_round_is_not_the_last(toy_pm, toy_recipe, tmp_path):
    """Keeps the keep_best test honest: in at least one mode the best round is older."""
    run = run_recipe(toy_recipe, ["loop.rounds=4"], run_dir=tmp_path / "r").run_dir
    rows = _rounds(run)
    bests = {pick(rows, key=lambda r: r["eval/p_real"])["round"] for pick in (max, min)}
    assert bests != {4}

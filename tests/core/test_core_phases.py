"""Every phase switch of ``loop:`` changes what the loop calls, in the documented order."""

from __future__ import annotations

import json
from pathlib import Path

from advx.rundir import RunDir
from advx.runner import run_recipe
from core_toys import CALLS, ORDER
from omegaconf import OmegaConf


def _run(recipe: Path, tmp_path: Path, *overrides: str):
    return run_recipe(recipe, list(overrides), runs_root=tmp_path / "runs")


def _rounds(run_dir: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == "round"]


def _phases(order: list[str]) -> list[str]:
    """The call trace reduced to phase names, consecutive repeats merged."""
    names = {"generator.sft": "sft", "classifier.fit": "fit", "task.augment_prompts": "augment",
             "optimizer.update": "update", "task.evaluate": "eval"}
    out: list[str] = []
    for call in order:
        name = names.get(call)
        if name and (not out or out[-1] != name):
            out.append(name)
    return out


def test_default_order_is_augment_classify_improve_evaluate(pm, toy_recipe, tmp_path):
    _run(toy_recipe, tmp_path, "loop.rounds=2")
    assert _phases(ORDER) == [
        "sft", "fit", "eval",                      # pretrain, round 0
        "augment", "fit", "update", "eval",        # round 1
        "augment", "fit", "update", "eval",        # round 2
    ]


def test_improve_first_runs_improvement_before_d_steps(pm, toy_recipe, tmp_path):
    _run(toy_recipe, tmp_path, "loop.rounds=1", "loop.improve_first=true", "loop.d_steps=2")
    assert _phases(ORDER) == [
        "sft", "fit", "eval", "update", "augment", "fit", "augment", "fit", "eval"
    ]


def test_pretrain_d_steps_precede_round_one(pm, toy_recipe, tmp_path):
    result = _run(toy_recipe, tmp_path, "loop.rounds=1", "loop.pretrain_d_steps=2")
    assert _phases(ORDER)[:7] == ["sft", "fit", "augment", "fit", "augment", "fit", "eval"]
    assert _rounds(result.run_dir)[0]["augment/pool_size"] == 16


def test_pretraining_switches(pm, toy_recipe, tmp_path):
    result = _run(toy_recipe, tmp_path, "loop.pretrain_generator=false",
                  "loop.pretrain_classifier=false", "loop.rounds=1")
    assert CALLS["generator.sft"] == 0
    assert CALLS["classifier.fit"] == 1  # only round 1's classify
    assert "sft/loss" not in _rounds(result.run_dir)[0]


def test_augment_and_classify_switches(pm, toy_recipe, tmp_path):
    _run(toy_recipe, tmp_path, "loop.augment=false", "loop.rounds=2")
    assert CALLS["task.augment_prompts"] == 0 and CALLS["classifier.fit"] == 3
    CALLS.clear()
    _run(toy_recipe, tmp_path, "loop.classify=false", "loop.rounds=2")
    assert CALLS["task.augment_prompts"] == 2 and CALLS["classifier.fit"] == 1


def test_augment_mode_replace_keeps_only_fresh_samples(pm, toy_recipe, tmp_path):
    result = _run(toy_recipe, tmp_path, "loop.augment_mode=replace", "loop.augment_samples=2")
    assert [r.get("augment/pool_size") for r in _rounds(result.run_dir)[1:]] == [16, 16, 16]


def test_no_improvement_steps(pm, toy_recipe, tmp_path):
    result = _run(toy_recipe, tmp_path, "loop.rl_steps=0")
    assert CALLS["optimizer.update"] == 0 and CALLS["reward"] == 0
    assert result.summary["global_steps"] == 0


def test_zero_rounds_is_pretraining_only(pm, toy_recipe, tmp_path):
    result = _run(toy_recipe, tmp_path, "loop.rounds=0")
    assert [r["round"] for r in _rounds(result.run_dir)] == [0]
    assert CALLS["task.augment_prompts"] == 0 and CALLS["optimizer.update"] == 0
    assert result.summary["final"]["round"] == 0


def test_use_reference_switch(pm, toy_recipe, tmp_path):
    _run(toy_recipe, tmp_path, "loop.use_reference=false", "loop.rounds=1")
    assert CALLS["generator.reference"] == 0 and CALLS["reward.saw_ref_logprobs"] == 0
    assert CALLS["reward"] == 3


def test_eval_every_and_evaluate_switch(pm, toy_recipe, tmp_path):
    result = _run(toy_recipe, tmp_path, "loop.rounds=5", "loop.eval_every=2",
                  "loop.keep_checkpoints=0")
    rounds = _rounds(result.run_dir)
    assert [r["round"] for r in rounds if r["evaluated"]] == [0, 2, 4, 5]
    # checkpoint frequency is its own key (loop.checkpoint_every, default 1)
    assert RunDir(result.run_dir).checkpoint_rounds() == [0, 1, 2, 3, 4, 5]
    assert "eval/p_real" not in rounds[1]
    CALLS.clear()
    result = _run(toy_recipe, tmp_path, "loop.evaluate=false", "loop.rounds=1")
    assert CALLS["task.evaluate"] == 0
    assert result.summary["best"] is None and "warning" in result.summary  # monitor unseen


def test_checkpoint_switches(pm, toy_recipe, tmp_path):
    result = _run(toy_recipe, tmp_path, "loop.checkpoint=false")
    assert not (result.run_dir / "checkpoints").exists()
    result = _run(toy_recipe, tmp_path, "loop.keep_checkpoints=1", "loop.save_samples=false")
    best = result.summary["best"]["round"]
    assert RunDir(result.run_dir).checkpoint_rounds() == sorted({best, 3})
    assert not (result.run_dir / "samples").exists()


def test_monitor_min_and_group_sampling(pm, toy_recipe, tmp_path):
    result = _run(toy_recipe, tmp_path, "loop.monitor_mode=min", "loop.samples_per_prompt=3")
    rounds = _rounds(result.run_dir)
    assert result.summary["best"]["round"] == min(rounds, key=lambda r: r["eval/p_real"])["round"]
    samples = (result.run_dir / "samples" / "round-1.jsonl").read_text().splitlines()
    assert sum('"improve"' in s for s in samples) == 3 * 4 * 3


def test_absent_components_skip_their_phases(pm, toy_recipe, tmp_path):
    cfg = OmegaConf.load(toy_recipe)
    cfg.classifier = None
    cfg.reward = None
    cfg.optimizer = None
    result = run_recipe(cfg, runs_root=tmp_path / "runs")
    skipped = result.summary["skipped_phases"]
    assert set(skipped) == {"pretrain_classifier", "classify", "improve"}
    assert "classifier" in skipped["classify"]
    assert CALLS["generator.sft"] == 1 and CALLS["task.augment_prompts"] == 3
    assert CALLS["optimizer.update"] == 0


def test_phases_are_plain_booleans_resolved_once():
    """The recipe's switches, less phases whose component is absent, as plain booleans."""
    from advx.components import Components
    from advx.loop import LoopConfig, Phases, plan_phases

    phases, skipped = plan_phases(LoopConfig(augment=False), Components(task=object()))
    assert phases == Phases(pretrain_generator=False, pretrain_classifier=False, augment=False,
                            classify=False, improve=False, use_reference=False, evaluate=True)
    assert set(skipped) == {"pretrain_generator", "pretrain_classifier", "classify", "improve",
                            "use_reference"}  # augment is off, so not "skipped"

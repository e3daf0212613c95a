"""The loop end to end on the toy components, through the real plugin manager."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from advx.rundir import RunDir
from advx.runner import run_recipe
from core_toys import CALLS, ToyLogger


def _run(recipe: Path, tmp_path: Path, *overrides: str, **kw):
    return run_recipe(recipe, list(overrides), runs_root=tmp_path / "runs", **kw)


def _metrics(run_dir: Path) -> list[dict]:
    """metrics.jsonl without wall-clock fields (the only thing allowed to differ)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def test_full_loop_writes_run_directory(pm, toy_recipe, tmp_path):
    result = _run(toy_recipe, tmp_path)
    run_dir = result.run_dir
    assert run_dir.parent == tmp_path / "runs" / "toy"
    for name in ("recipe.yaml", "metrics.jsonl", "summary.json"):
        assert (run_dir / name).is_file()
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == [
        "round-0.jsonl", "round-1.jsonl", "round-2.jsonl", "round-3.jsonl"
    ]
    # keep_checkpoints defaults to the newest 2 plus the best by loop.monitor
    best_round = json.loads((run_dir / "summary.json").read_text())["best"]["round"]
    assert RunDir(run_dir).checkpoint_rounds() == sorted({2, 3, best_round})
    parts = {p.name for p in (run_dir / "checkpoints" / "round-3").iterdir()}
    assert parts == {f"{p}.pt" for p in ("generator", "classifier", "optimizer", "reference",
                                          "rng", "loop")} | {"complete.json"}

    records = _metrics(run_dir)
    steps = [r for r in records if r["kind"] == "step"]
    rounds = [r for r in records if r["kind"] == "round"]
    assert [r["round"] for r in rounds] == [0, 1, 2, 3]
    assert len(steps) == 3 * 3 and steps[-1]["global_step"] == 9
    # every reward term is logged beside the total, with the optimizer's metrics
    assert {"reward/total", "reward/disc_prob", "reward/kl", "optim/loss"} <= set(steps[0])
    assert "sft/loss" in rounds[0] and "eval/p_real" in rounds[0]
    assert rounds[2]["augment/pool_size"] == 2 * 8  # accumulate: D_N = D_{N-1} ∪ D_syn

    samples = [json.loads(x) for x in (run_dir / "samples/round-1.jsonl").read_text().splitlines()]
    assert {s["phase"] for s in samples} == {"augment", "improve"}
    assert sum(s["phase"] == "improve" for s in samples) == 3 * 4 * 2  # steps × B × n

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["global_steps"] == 9
    best = max(rounds, key=lambda r: r["eval/p_real"])
    assert summary["best"]["round"] == best["round"]
    assert summary["final"]["round"] == 3
    # the reference was filled, and a logger saw every step and round
    assert CALLS["reward.saw_ref_logprobs"] == 9
    assert len(ToyLogger.RECORDS) == 9 + 4 and CALLS["logger.close"] == 1


def test_same_seed_gives_identical_metrics(pm, toy_recipe, tmp_path):
    first = _run(toy_recipe, tmp_path)
    second = _run(toy_recipe, tmp_path)
    assert first.run_dir != second.run_dir
    assert _metrics(first.run_dir) == _metrics(second.run_dir)
    other = _run(toy_recipe, tmp_path, "seed=4")
    assert _metrics(other.run_dir) != _metrics(first.run_dir)


def test_resume_equals_uninterrupted(pm, toy_recipe, tmp_path):
    full = _run(toy_recipe, tmp_path)

    class Crash(Exception):
        pass

    class CrashInRound2:
        """A plugin that stops the run in the middle of round 2 (after step 2)."""

        import advx

        @advx.hookimpl
        def advx_on_step_end(self, run, round, step, metrics):
            if round == 2 and step == 2:
                raise Crash

    with pytest.raises(Crash):
        _run(toy_recipe, tmp_path, plugins=[CrashInRound2()])
    crashed = sorted((tmp_path / "runs" / "toy").iterdir())[-1]
    assert RunDir(crashed).last_checkpoint() == 1
    crash_summary = json.loads((crashed / "summary.json").read_text())
    assert crash_summary["status"] == "failed" and crash_summary["error"]["type"] == "Crash"

    resumed = run_recipe(None, resume=crashed)
    assert resumed.run_dir == crashed
    assert resumed.summary["resumed_from_round"] == 1
    assert _metrics(crashed) == _metrics(full.run_dir)
    strip = lambda s: {k: v for k, v in s.items() if not k.startswith("time/")}  # noqa: E731
    assert strip(resumed.summary["final"]) == strip(full.summary["final"])


def test_resume_can_extend_a_finished_run(pm, toy_recipe, tmp_path):
    short = _run(toy_recipe, tmp_path, "loop.rounds=2")
    extended = run_recipe(None, ["loop.rounds=3"], resume=short.run_dir)
    longer = _run(toy_recipe, tmp_path, "loop.rounds=3")
    # rounds 0-2 of the short run had eval on round 2 as its last; the rest is identical
    assert _metrics(extended.run_dir)[-1] == _metrics(longer.run_dir)[-1]


def test_round_records_time_every_phase(pm, toy_recipe, tmp_path):
    """Wall time per phase is in each round's record, so results can report it per phase."""
    run_dir = _run(toy_recipe, tmp_path).run_dir
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rounds = [r for r in rows if r["kind"] == "round"]
    pretrain_phases = {"time/pretrain_generator_s", "time/evaluate_s"}
    assert pretrain_phases <= set(rounds[0])
    per_round = {"time/augment_s", "time/classify_s", "time/improve_s", "time/evaluate_s"}
    assert per_round <= set(rounds[1])
    for record in rounds:
        phases = [v for k, v in record.items()
                  if k.startswith("time/") and k != "time/round_s"]
        assert all(v >= 0 for v in phases)
        assert sum(phases) <= record["time/round_s"] + 1e-6


def test_the_consistency_filter_keeps_the_samples_whose_label_the_classifier_gives_p(pm):
    """loop.augment_min_label_p on hand-made probabilities: a sample is kept when
    P_classifier(its label) >= p."""
    from types import SimpleNamespace

    import torch
    from advx.loop import Experiment
    from advx.rollout import Sample

    probs = torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    samples = [Sample(text=t, label=y) for t, y in (("a", 0), ("b", 0), ("c", 1))]
    classifier = SimpleNamespace(predict_proba=lambda batch: probs[:len(batch)])
    for p, kept in ((0.5, ["a"]), (0.35, ["a", "c"]), (0.95, [])):
        loop = SimpleNamespace(c=SimpleNamespace(classifier=classifier, task=None),
                               cfg=SimpleNamespace(augment_min_label_p=p))
        assert [s.text for s in Experiment._consistent(loop, samples)] == kept


def test_filtered_augmentation_logs_what_it_kept(pm, toy_recipe, tmp_path):
    run_dir = _run(toy_recipe, tmp_path, "loop.augment_min_label_p=0.5").run_dir
    rounds = [r for r in _metrics(run_dir) if r["kind"] == "round"][1:]
    pool = 0
    for record in rounds:
        assert record["augment/generated"] == 8
        assert record["augment/new"] == round(8 * record["augment/kept_rate"])
        pool += record["augment/new"]
        assert record["augment/pool_size"] == pool
    saved = [json.loads(x) for x in (run_dir / "samples/round-1.jsonl").read_text().splitlines()]
    assert sum(s["phase"] == "augment" for s in saved) == rounds[0]["augment/new"]
    # p = 1 keeps nothing a softmax classifier scores
    nothing = _run(toy_recipe, tmp_path, "loop.augment_min_label_p=1.0").run_dir
    assert all(r.get("augment/pool_size", 0) == 0 for r in _metrics(nothing)
               if r["kind"] == "round")

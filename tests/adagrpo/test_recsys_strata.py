"""The stratified analysis of AdaGRPO on hand-made per-sample records, and the records the
optimizer writes with ``log_samples``."""

from __future__ import annotations

import json
import math
import statistics

import pytest
from advx_recsys.strata import load_samples, stratify


def record(step, index, before, after, hard, disc, target="t", share=None):
    return {"round": 1, "step": step, "index": index, "target": target, "gt_logprob": before,
            "gt_logprob_after": after, "rollout_entropy": 1.0, "disc_share": share,
            "difficulty_pass": hard, "discriminability_pass": disc}


def test_stratify_pairs_by_prompt_and_splits_by_the_two_diagnostics():
    method = [
        record(0, 0, -10.0, -9.0, True, True),    # Δ +1.0
        record(0, 1, -10.0, -8.0, True, True),    # Δ +2.0
        record(1, 0, -2.0, -2.5, False, True),    # Δ −0.5
        record(1, 1, -9.0, -9.0, True, False),    # Δ 0
        record(2, 0, -5.0, -4.0, True, True, target="other"),  # a different prompt: unpaired
    ]
    baseline = [
        record(0, 0, -10.0, -9.5, True, True),    # Δ +0.5
        record(0, 1, -10.0, -9.5, True, True),    # Δ +0.5
        record(1, 0, -2.0, -2.2, False, False),   # Δ −0.2 (strata follow the METHOD run)
        record(1, 1, -9.0, -8.0, True, False),    # Δ +1.0
        record(2, 0, -5.0, -5.0, True, True),
    ]
    out = stratify(method, baseline)
    assert set(out) == {"hard=True,disc=True", "hard=False,disc=True", "hard=True,disc=False"}
    both = out["hard=True,disc=True"]
    assert both["n"] == 2 and both["delta_method"] == pytest.approx(1.5)
    assert both["delta_baseline"] == pytest.approx(0.5)
    assert both["diff"] == pytest.approx(1.0)
    assert both["se"] == pytest.approx(0.5)  # diffs 0.5 and 1.5: sd 0.707, / sqrt 2
    assert out["hard=False,disc=True"]["diff"] == pytest.approx(-0.3)
    assert math.isnan(out["hard=False,disc=True"]["se"])
    assert out["hard=True,disc=False"]["diff"] == pytest.approx(-1.0)


def test_stratify_with_thresholds_on_recorded_values():
    method = [record(0, 0, -12.0, -11.0, False, False, share=0.9),
              record(0, 1, -3.0, -2.0, False, False, share=0.2)]
    baseline = [record(0, 0, -12.0, -12.0, False, False), record(0, 1, -3.0, -3.0, False, False)]
    out = stratify(method, baseline, difficulty="gt_logprob", difficulty_threshold=-10.0,
                   disc_threshold=0.5)
    assert set(out) == {"hard=True,disc=True", "hard=False,disc=False"}


def test_adagrpo_writes_per_sample_records(tmp_path):
    from adagrpo_kit import grpo_batch
    from advx import Rewards, StepContext
    from advx_grpo.adagrpo import AdaGRPOConfig, AdaGRPOOptimizer

    generator, rollout, _ = grpo_batch()
    for p in rollout.prompts:  # ground truth and history for the diagnostics
        p.meta.update({"target": "a5", "target_text": "a5", "history": ("a1",), "user": "u"})

    class Task:
        def item_of(self, text):
            return text.split()[0] if text else None

    class Ranker:
        def score(self, histories, items):
            import torch
            return torch.tensor([float(len(i)) for i in items])

    import torch

    opt = AdaGRPOOptimizer(AdaGRPOConfig(beta=0.0, log_samples=True), generator)
    opt.samples_path = tmp_path / "adagrpo_samples.jsonl"
    rewards = Rewards.at_end(torch.randn(rollout.batch_size), rollout)
    ctx = StepContext(task=Task(), generator=generator, classifier=Ranker(), reference=None,
                      round=1, step=3, rng=None)
    opt.update(rollout, rewards, ctx)
    rows = load_samples(tmp_path)
    assert len(rows) == 2 and [r["index"] for r in rows] == [0, 1]
    assert all(r["step"] == 3 and r["gt_logprob_after"] is not None for r in rows)
    assert rows[0]["gt_logprob_after"] != rows[0]["gt_logprob"]  # the update moved it
    assert json.loads(opt.samples_path.read_text().splitlines()[0])["gate"] == "adaptive"


def test_across_seeds_takes_each_seeds_paired_mean_as_one_unit():
    from advx_recsys.strata import across_seeds
    from scipy import stats

    def row(n, dm, db):
        return {"n": n, "delta_method": dm, "delta_baseline": db, "diff": dm - db, "se": 0.1}

    per_seed = {0: {"hard=True,disc=True": row(10, 1.0, 0.5), "hard=False,disc=False":
                    row(4, 0.0, 0.0)},
                1: {"hard=True,disc=True": row(30, 0.8, 0.6)},
                2: {"hard=True,disc=True": row(20, 0.9, 0.2)}}
    out = across_seeds(per_seed)
    both = out["hard=True,disc=True"]
    diffs = [0.5, 0.2, 0.7]  # one unit per seed, whatever its number of pairs
    mean, sd = sum(diffs) / 3, statistics.stdev(diffs)
    half = stats.t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert both["seeds"] == 3 and both["pairs"] == 60
    assert both["diff"] == pytest.approx(mean)
    assert both["delta_method"] == pytest.approx(0.9)
    assert both["ci_low"] == pytest.approx(mean - half)
    assert both["ci_high"] == pytest.approx(mean + half)
    alone = out["hard=False,disc=False"]  # one seed: no interval
    assert alone["seeds"] == 1 and math.isnan(alone["ci_low"]) and math.isnan(alone["ci_high"])


def test_the_command_line_says_what_it_needs_with_exit_2(tmp_path, capsys):
    from advx_recsys.strata import main

    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path)])  # one run only
    assert exit_.value.code == 2
    assert "give METHOD_RUN BASELINE_RUN, or --compare FILE" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), str(tmp_path)])  # no records there
    assert exit_.value.code == 2
    assert "no per-sample AdaGRPO records" in capsys.readouterr().err


def test_a_cell_whose_run_folder_is_gone_reads_its_records_from_the_ledger(tmp_path):
    """``compare_strata`` on a fresh clone: the records come from the compare's ledger copy
    (``ledger_files``), gzipped, when the cell's run folder is on another machine."""
    import gzip
    from datetime import datetime

    from advx.compare.cells import Cell
    from advx.errors import DataError
    from advx_recsys.strata import _cell_samples
    from optuna.trial import FrozenTrial, TrialState

    rows = [record(0, 0, -10.0, -9.0, True, True), record(0, 1, -3.0, -2.5, False, True)]
    entry = tmp_path / "ledger" / "ada" / "seed-0.json"
    copy = entry.with_suffix(".files") / "adagrpo_samples.jsonl.gz"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))

    def cell(ledger_entry):
        now = datetime.now()
        trial = FrozenTrial(
            number=-1, trial_id=-1, state=TrialState.COMPLETE, value=0.0, datetime_start=now,
            datetime_complete=now, params={}, distributions={}, system_attrs={},
            intermediate_values={}, user_attrs={"run_dir": str(tmp_path / "gone"),
                                                "ledger": str(ledger_entry)})
        return Cell("ada", 0, "done", trial)

    assert _cell_samples(cell(entry)) == rows
    with pytest.raises(DataError, match=r"nor in the compare's ledger.*ledger_files"):
        _cell_samples(cell(tmp_path / "ledger" / "ada" / "seed-1.json"))

"""`advx run` of a shrunken SeqGAN recipe: the plugins work inside the core loop."""

from __future__ import annotations

import json
from pathlib import Path

from advx.runner import run_recipe

ROOT = Path(__file__).resolve().parents[2]

TINY = [
    "task.oracle_path=''", "task.vocab_size=30", "task.seq_len=6", "task.num_train=64",
    "task.num_test=32", "task.num_eval_samples=32", "task.num_fakes=32", "task.d_real=32",
    "generator.vocab_size=30", "generator.max_len=6", "generator.epochs=1",
    "classifier.vocab_size=30", "classifier.max_len=6", "classifier.emb_dim=8",
    "classifier.filter_sizes=[1,2,6]", "classifier.num_filters=[4,4,4]",
    "reward.rollouts=2", "loop.rounds=2", "loop.pretrain_d_steps=1", "loop.batch_size=8",
    "loop.eval_every=1",
]


def test_seqgan_cpu_recipe_runs_in_the_loop(tmp_path):
    result = run_recipe(ROOT / "recipes/seqgan_oracle_cpu.yaml", TINY, run_dir=tmp_path / "run")
    assert result.summary["status"] == "complete"
    rounds = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()
              if '"round"' in line]
    assert [r["round"] for r in rounds if r.get("kind") == "round"] == [0, 1, 2]
    assert "nll_oracle" in result.summary["final"]
    assert (tmp_path / "run/checkpoints/round-2/reward.pt").is_file()  # the lagged policy

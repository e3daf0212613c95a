"""AdaGRPO through the real loop (``advx.runner.run_recipe``) on a small fixture, with the
causal and the seq2seq policy; and the optimizer's NLL / gated-GRPO bookkeeping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from adagrpo_kit import write_beauty_fixture
from advx import BuildContext, StepContext
from advx.runner import run_recipe
from advx_causal import CausalConfig, build_causal
from advx_grpo import AdaGRPOConfig, build_adagrpo
from advx_recsys import (
    NextItemConfig,
    RankerConfig,
    RankerScoreConfig,
    build_next_item,
    build_ranker,
    build_ranker_score,
)
from omegaconf import OmegaConf


def recipe(data: Path, generator: dict, optimizer: dict) -> dict:
    return {
        "name": "adagrpo_fixture",
        "seed": 0,
        "task": {"name": "next_item", "path": str(data / "seq.txt"),
                 "attributes": str(data / "attrs.json"), "codebook": [3, 3], "svd_dim": 4,
                 "history": 3, "eval_users": 10, "topk": 5},
        "generator": generator,
        "classifier": {"name": "ranker", "d_model": 16, "num_heads": 2, "num_layers": 1,
                       "epochs": 2},
        "reward": {"name": "ranker_score"},
        "optimizer": optimizer,
        "loop": {"rounds": 1, "rl_steps": 2, "batch_size": 4, "samples_per_prompt": 4,
                 "augment": False, "classify": False, "monitor": "valid/hr@10",
                 "save_samples": False},
    }


@pytest.mark.parametrize(
    ("generator", "optimizer"),
    [
        ({"name": "causal", "d_model": 16, "num_heads": 2, "max_new_tokens": 4, "epochs": 1},
         {"name": "adagrpo", "gate": "adaptive", "grpo_weight": 1.0}),
        ({"name": "seq2seq", "d_model": 16, "num_heads": 2, "d_kv": 8, "d_ff": 32,
          "tokenizer": "word", "value_head": False, "max_new_tokens": 4, "epochs": 1},
         {"name": "grpo", "beta": 0.04}),
        ({"name": "seq2seq", "d_model": 16, "num_heads": 2, "d_kv": 8, "d_ff": 32,
          "tokenizer": "word", "value_head": False, "max_new_tokens": 4, "epochs": 1},
         {"name": "adagrpo", "gate": "always", "grpo_weight": 0.5}),
        ({"name": "causal", "d_model": 16, "num_heads": 2, "max_new_tokens": 4, "epochs": 1},
         {"name": "grpo", "beta": 0.04, "loss_type": "dapo", "epochs": 2,
          "minibatch_size": 8}),
    ],
    ids=["causal-adagrpo", "seq2seq-grpo", "seq2seq-adagrpo", "causal-grpo"],
)
def test_run_recipe_end_to_end(tmp_path, generator, optimizer):
    data = write_beauty_fixture(tmp_path / "data")
    result = run_recipe(OmegaConf.create(recipe(data, generator, optimizer)),
                        run_dir=tmp_path / "run")
    summary = result.summary
    assert summary["status"] == "complete" and summary["rounds_completed"] == 1
    for split in ("valid", "test"):
        for key in ("hr@5", "ndcg@5", "hallucination"):
            assert 0.0 <= summary["final"][f"{split}/{key}"] <= 1.0
    steps = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").open()]
    steps = [s for s in steps if s["kind"] == "step"]
    assert len(steps) == 2
    if optimizer["name"] == "adagrpo":
        for key in ("gate_open_rate", "difficulty_pass_rate", "discriminability_pass_rate"):
            assert 0.0 <= steps[-1][f"adagrpo/{key}"] <= 1.0
    assert "reward/valid" in steps[-1]


def test_closed_gate_is_pure_nll_and_open_gate_adds_grpo(tmp_path):
    data = write_beauty_fixture(tmp_path / "data")
    ctx = BuildContext(run_dir=tmp_path, seed=0, device="cpu")
    ctx.task = build_next_item(NextItemConfig(
        path=str(data / "seq.txt"), attributes=str(data / "attrs.json"), codebook=[3, 3],
        svd_dim=4, history=3), ctx)
    ctx.classifier = build_ranker(
        RankerConfig(d_model=16, num_heads=2, num_layers=1, epochs=1), ctx)
    ctx.classifier.fit(ctx.task.classifier_train())
    ctx.generator = build_causal(CausalConfig(d_model=16, num_heads=2, max_new_tokens=4), ctx)
    reward = build_ranker_score(RankerScoreConfig(), ctx)
    rng = np.random.default_rng(0)
    rollout = ctx.generator.sample(ctx.task.rl_prompts(4, rng), n=4)
    rewards = reward(rollout, None)
    step = StepContext(task=ctx.task, generator=ctx.generator, classifier=ctx.classifier,
                       reference=None, round=1, step=1, rng=rng)
    closed = build_adagrpo(AdaGRPOConfig(beta=0.0, lr=0.0, discriminability_threshold=2.0), ctx)
    m = closed.update(rollout, rewards, step)
    assert m["adagrpo/gate_open_rate"] == 0.0 and m["adagrpo/discriminability_pass_rate"] == 0.0
    assert m["loss/total"] == pytest.approx(m["loss/nll"], rel=1e-6)
    assert m["loss/grpo_gated"] == 0.0
    always = build_adagrpo(AdaGRPOConfig(beta=0.0, lr=0.0, gate="always", grpo_weight=0.5), ctx)
    m = always.update(rollout, rewards, step)
    assert m["adagrpo/gate_open_rate"] == 1.0
    assert m["loss/total"] == pytest.approx(m["loss/nll"] + 0.5 * m["loss/grpo"], rel=1e-5)

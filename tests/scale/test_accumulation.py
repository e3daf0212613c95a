"""Gradient accumulation (grad_accum_steps, advx.microbatch): the same update in micro-batches."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from advx.components import StepContext
from advx.errors import ConfigError
from advx.microbatch import micro_batches
from advx.rollout import Rewards
from advx_grpo.grpo import GRPOConfig, GRPOOptimizer
from advx_ppo.ppo import PPO, PPOConfig
from advx_reinforce.reinforce import Reinforce, ReinforceConfig
from ppo_toy import ToyTask, make_generator


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    task = ToyTask()
    generator = make_generator(tmp_path_factory.mktemp("gen"), task, epochs=1)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    rollout = generator.sample(task.rl_prompts(3, rng), n=2, temperature=1.0)
    rewards = Rewards.at_end(torch.linspace(-1.0, 1.0, rollout.batch_size), rollout)
    return task, generator, rollout, rewards


def _update(kind: str, steps: int, setup) -> list[torch.Tensor]:
    task, generator, rollout, rewards = setup
    gen = copy.deepcopy(generator)
    if kind == "ppo":
        opt = PPO(PPOConfig(epochs=1, vf_coef=0.0, lr=1e-2, grad_accum_steps=steps),
                  gen.parameters())
    elif kind == "grpo":
        opt = GRPOOptimizer(GRPOConfig(beta=0.0, lr=1e-2, grad_accum_steps=steps), gen)
    else:
        opt = Reinforce(ReinforceConfig(lr=1e-2, grad_accum_steps=steps), gen.parameters())
    ctx = StepContext(task=task, generator=gen, classifier=None, reference=None, round=1,
                      step=1, rng=np.random.default_rng(1))
    opt.update(rollout, rewards, ctx)  # one optimizer step: the gradients are its
    return [p.grad.detach().clone() for p in gen.parameters() if p.grad is not None]


@pytest.mark.parametrize("kind", ["ppo", "grpo", "reinforce"])
def test_micro_batches_give_the_whole_batch_gradient(kind: str, setup) -> None:
    whole = _update(kind, 1, setup)
    split = _update(kind, 3, setup)
    assert len(whole) == len(split) > 0 and any(bool(g.abs().sum() > 0) for g in whole)
    for a, b in zip(whole, split, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_sft_micro_batches_give_the_same_gradient(tmp_path) -> None:
    task = ToyTask()
    one = make_generator(tmp_path / "a", task, epochs=1, batch_size=8)
    three = make_generator(tmp_path / "b", task, epochs=1, batch_size=8, grad_accum_steps=3)
    three.model.load_state_dict(one.model.state_dict())
    samples = task.generator_train()[:8]
    torch.manual_seed(0)
    m1 = one.sft(samples)
    torch.manual_seed(0)
    m3 = three.sft(samples)
    assert m1["sft/loss"] == pytest.approx(m3["sft/loss"], rel=1e-5)
    # one minibatch, one optimizer step: the gradients left are that step's
    for a, b in zip(one.model.parameters(), three.model.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-4)


def test_micro_batches_cover_every_row_once() -> None:
    parts = micro_batches(7, 3)
    assert [len(p) for p in parts] == [3, 2, 2]
    assert torch.cat(parts).tolist() == list(range(7))
    assert len(micro_batches(2, 5)) == 2


def test_bad_grad_accum_steps_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"optimizer\.grad_accum_steps"):
        Reinforce(ReinforceConfig(grad_accum_steps=0), [torch.nn.Parameter(torch.zeros(1))])

"""PPO's declared capability (a value head when ``vf_coef > 0``) and its guarded step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from advx.components import BuildContext, PolicyOutputs, StepContext
from advx.errors import NonFiniteError, PluginError
from advx.rollout import Prompt, Rewards, Rollout
from advx_ppo import PPOConfig, build_ppo
from torch import nn


class Unigram:
    """A critic-less policy over 4 tokens: a learnable unigram distribution."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.logits = nn.Parameter(torch.randn(4))

    def parameters(self):
        return [self.logits]

    def sample(self, n: int, length: int = 3) -> Rollout:
        with torch.no_grad():
            ids = torch.multinomial(torch.softmax(self.logits, -1).expand(n, -1), length, True)
            logprobs = torch.log_softmax(self.logits, -1)[ids]
        return Rollout(
            prompts=[Prompt("")] * n, prompt_ids=torch.zeros(n, 1, dtype=torch.long),
            prompt_mask=torch.ones(n, 1, dtype=torch.long), response_ids=ids,
            response_mask=torch.ones_like(ids), logprobs=logprobs,
            texts=[" ".join(map(str, row)) for row in ids.tolist()],
            group_ids=torch.arange(n),
        )

    def policy_outputs(self, rollout: Rollout) -> PolicyOutputs:
        logp = torch.log_softmax(self.logits, -1)
        entropy = -(logp.exp() * logp).sum().expand(rollout.response_ids.shape)
        return PolicyOutputs(logprobs=logp[rollout.response_ids], entropy=entropy)


def _build(generator, tmp_path, **keys):
    ctx = BuildContext(run_dir=tmp_path, seed=0, device="cpu", generator=generator)
    ctx.names["generator"] = "unigram"
    return build_ppo(PPOConfig(**keys), ctx)


def test_critic_needs_a_value_head_at_build_time(tmp_path):
    with pytest.raises(PluginError) as err:
        _build(Unigram(), tmp_path, vf_coef=0.5)
    message = str(err.value)
    assert "generator 'unigram' (Unigram) lacks value_parameters()" in message
    assert "optimizer 'ppo'" in message and "HasValueHead" in message
    assert "vf_coef=0" in message  # the way out


def test_without_critic_ppo_trains_any_generator(tmp_path):
    policy = Unigram()
    ppo = _build(policy, tmp_path, vf_coef=0.0, lr=0.1)
    rollout = policy.sample(8)
    reward = (rollout.response_ids == 0).float().sum(-1)  # more token-0s is better
    step = StepContext(task=None, generator=policy, classifier=None, reference=None,
                       round=1, step=1, rng=np.random.default_rng(0))
    before = float(torch.softmax(policy.logits.detach(), -1)[0])
    for _ in range(5):
        metrics = ppo.update(rollout, Rewards.at_end(reward, rollout), step)
    assert float(torch.softmax(policy.logits.detach(), -1)[0]) > before
    assert metrics["ppo/loss/value"] == 0.0


def test_non_finite_reward_never_reaches_the_weights(tmp_path):
    policy = Unigram()
    ppo = _build(policy, tmp_path, vf_coef=0.0, whiten_advantages=False)
    ppo.return_stats.update(torch.tensor([0.5, 1.5]))
    stats = ppo.return_stats.state_dict()
    rollout = policy.sample(4)
    reward = torch.tensor([1.0, float("nan"), 0.0, 1.0])
    step = StepContext(task=None, generator=policy, classifier=None, reference=None,
                       round=1, step=1, rng=np.random.default_rng(0))
    weights = policy.logits.detach().clone()
    with pytest.raises(NonFiniteError, match="ppo loss is nan"):
        ppo.update(rollout, Rewards.at_end(reward, rollout), step)
    assert torch.equal(policy.logits.detach(), weights)
    assert policy.logits.grad is None  # zeroed, not left for a later step
    assert ppo.return_stats.state_dict() == stats  # the running reward norm is untouched

"""PPO updates on the tiny seq2seq policy: learning direction, no recomputation, early stop."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from advx.components import BuildContext, Optimizer, StepContext
from advx.rollout import Rewards
from advx_cls_loss import ClsLossConfig, ClsLossReward
from advx_ppo import PPOConfig, build_ppo
from ppo_toy import LengthClassifier


class Spy:
    """Forwards to a generator and counts the calls an update makes."""

    def __init__(self, generator):
        self.inner = generator
        self.calls: dict[str, int] = {}

    def __getattr__(self, name):
        self.calls[name] = self.calls.get(name, 0) + 1
        return getattr(self.inner, name)


def _ctx(generator, classifier=None) -> StepContext:
    return StepContext(
        task=None, generator=generator, classifier=classifier, reference=None, round=1,
        step=0, rng=np.random.default_rng(0),
    )  # fmt: skip


def _ppo(generator, tmp_path, **keys):
    ctx = BuildContext(run_dir=tmp_path, seed=0, device="cpu", generator=generator)
    return build_ppo(PPOConfig(**keys), ctx)


@pytest.fixture
def policy(sft_generator):
    return copy.deepcopy(sft_generator)


def test_update_calls_only_policy_outputs(policy, toy_task, tmp_path):
    rollout = policy.sample(toy_task.augment_prompts(0), n=2)  # B = 8
    rewards = Rewards.at_end(torch.randn(rollout.batch_size), rollout)
    spy = Spy(policy)
    ppo = _ppo(policy, tmp_path, epochs=3, minibatch_size=4)
    assert isinstance(ppo, Optimizer)
    metrics = ppo.update(rollout, rewards, _ctx(spy))
    assert spy.calls == {"policy_outputs": 3 * 2}  # epochs × minibatches, nothing recomputed
    assert metrics["ppo/epochs"] == 3 and metrics["ppo/early_stopped"] == 0
    assert all(np.isfinite(v) for v in metrics.values())


def test_first_minibatch_starts_on_policy(policy, toy_task, tmp_path):
    rollout = policy.sample(toy_task.augment_prompts(0), n=2)
    rewards = Rewards.at_end(torch.randn(rollout.batch_size), rollout)
    metrics = _ppo(policy, tmp_path, epochs=1).update(rollout, rewards, _ctx(policy))
    assert metrics["ppo/ratio"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["ppo/approx_kl"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["ppo/clipfrac"] == 0.0


def test_update_raises_the_likelihood_of_rewarded_responses(policy, toy_task, tmp_path):
    rollout = policy.sample(toy_task.augment_prompts(0), n=4)
    reward = torch.full((rollout.batch_size,), -1.0)
    reward[::4] = 1.0  # the first sample of every prompt is good
    ppo = _ppo(policy, tmp_path, lr=1e-3, epochs=4)
    before = (rollout.logprobs).sum(-1)
    for _ in range(3):
        ppo.update(rollout, Rewards.at_end(reward, rollout), _ctx(policy))
    after = policy.policy_outputs(rollout).logprobs.detach().sum(-1)
    change = after - before
    assert change[::4].mean() > 0.2
    assert change[::4].mean() > change[reward < 0].mean() + 0.2


def test_target_kl_stops_early(policy, toy_task, tmp_path):
    rollout = policy.sample(toy_task.augment_prompts(0), n=2)
    rewards = Rewards.at_end(torch.randn(rollout.batch_size), rollout)
    ppo = _ppo(policy, tmp_path, lr=1e-2, epochs=10, minibatch_size=2, target_kl=1e-6)
    metrics = ppo.update(rollout, rewards, _ctx(policy))
    assert metrics["ppo/early_stopped"] == 1.0 and metrics["ppo/epochs"] < 10
    assert metrics["ppo/approx_kl_last"] > 1e-6


def test_works_without_a_value_head(tmp_path, toy_task):
    from ppo_toy import make_generator

    generator = make_generator(tmp_path, toy_task, value_head=False, epochs=1)
    rollout = generator.sample(toy_task.augment_prompts(0), n=2)
    assert rollout.values is None
    rewards = Rewards.at_end(torch.randn(rollout.batch_size), rollout)
    metrics = _ppo(generator, tmp_path).update(rollout, rewards, _ctx(generator))
    assert metrics["ppo/loss/value"] == 0.0


def test_optimizer_state_roundtrip(policy, toy_task, tmp_path):
    rollout = policy.sample(toy_task.augment_prompts(0), n=2)
    ppo = _ppo(policy, tmp_path)
    ppo.update(rollout, Rewards.at_end(torch.randn(rollout.batch_size), rollout), _ctx(policy))
    fresh = _ppo(policy, tmp_path)
    fresh.load_state_dict(ppo.state_dict())
    a = ppo.state_dict()["optimizer"]["state"][0]["exp_avg"]
    b = fresh.state_dict()["optimizer"]["state"][0]["exp_avg"]
    torch.testing.assert_close(a, b)


def test_one_full_step_with_the_cls_loss_reward(policy, toy_task, tmp_path):
    """sample → reference log-probs → cls_loss reward → PPO update, as the loop does it."""
    reference = policy.reference()
    rollout = policy.sample(toy_task.rl_prompts(8, np.random.default_rng(0)), n=1)
    with torch.no_grad():
        rollout.ref_logprobs = reference.policy_outputs(rollout).logprobs
    torch.testing.assert_close(rollout.ref_logprobs, rollout.logprobs, atol=1e-5, rtol=0)
    ctx = _ctx(policy, LengthClassifier())
    rewards = ClsLossReward(ClsLossConfig(alpha=0.7, beta=0.1))(rollout, ctx)
    assert rewards.terms["kl"].abs().max() < 1e-4  # π_θ = π_FT before any update
    metrics = _ppo(policy, tmp_path, lr=1e-3).update(rollout, rewards, ctx)
    assert metrics["ppo/approx_kl"] > 0
    rollout2 = policy.sample(toy_task.rl_prompts(8, np.random.default_rng(1)), n=1)
    with torch.no_grad():
        rollout2.ref_logprobs = reference.policy_outputs(rollout2).logprobs
    assert ClsLossReward(ClsLossConfig())(rollout2, ctx).terms["kl"].abs().sum() > 0


@pytest.mark.parametrize("mode", ["norm", "scale", "none"])
def test_reward_norm_uses_running_return_statistics(policy, toy_task, tmp_path, mode):
    rollout = policy.sample(toy_task.augment_prompts(0), n=2)
    totals = 5.0 + torch.arange(rollout.batch_size, dtype=torch.float32) * 10.0
    ppo = _ppo(policy, tmp_path, epochs=1, reward_norm=mode, value_clip=0.0, lam=1.0)
    ppo.config.lr = 0.0  # keep V_old = V_θ = 0 so returns can be read off the value loss
    metrics = ppo.update(rollout, Rewards.at_end(totals, rollout), _ctx(policy))
    std, mean = float(totals.std()), float(totals.mean())
    expected = {"norm": (mean, std), "scale": (0.0, std), "none": (0.0, 1.0)}[mode]
    assert metrics["ppo/reward_shift"] == pytest.approx(expected[0], rel=1e-5)
    assert metrics["ppo/reward_scale"] == pytest.approx(expected[1], rel=1e-5)
    # with γ = λ = 1 and V = 0 every token's return is the row's normalised total
    normalised = (totals - expected[0]) / expected[1]
    per_token_returns = normalised[:, None].expand_as(rollout.logprobs)
    expected_loss = 0.5 * float(
        (per_token_returns**2 * rollout.response_mask).sum() / rollout.response_mask.sum()
    )
    assert metrics["ppo/loss/value"] == pytest.approx(expected_loss, rel=1e-4)


def test_unknown_reward_norm_is_a_config_error():
    """An Enum choice: the recipe validator names the key and the choices before any build."""
    from pathlib import Path

    from advx.errors import ConfigError
    from advx.plugins import get_registry
    from advx.recipe import load_recipe, validate_recipe

    recipe = Path(__file__).parents[2] / "recipes" / "ppo_cls_loss.yaml"
    with pytest.raises(ConfigError,
                       match=r"optimizer.reward_norm: 'whiten' is not one of norm, scale, none"):
        validate_recipe(load_recipe(recipe, ["optimizer.reward_norm=whiten"]), get_registry())


def test_ppo_with_cls_loss_learns_what_the_classifier_rewards(policy, toy_task, tmp_path):
    """LengthClassifier's loss is the word count: α = 1 PPO must lengthen the queries."""
    torch.manual_seed(0)
    reference = policy.reference()
    ppo = _ppo(policy, tmp_path, lr=1e-3, epochs=4)
    reward = ClsLossReward(ClsLossConfig(alpha=1.0, beta=0.05))
    rng = np.random.default_rng(0)
    words = []
    for step in range(12):
        rollout = policy.sample(toy_task.rl_prompts(16, rng))
        with torch.no_grad():
            rollout.ref_logprobs = reference.policy_outputs(rollout).logprobs
        ctx = StepContext(task=toy_task, generator=policy, classifier=LengthClassifier(),
                          reference=reference, round=1, step=step, rng=rng)  # fmt: skip
        rewards = reward(rollout, ctx)
        words.append(rewards.terms["cls_loss"].mean().item())
        ppo.update(rollout, rewards, ctx)
    assert np.mean(words[-3:]) > np.mean(words[:2]) + 1.5, words


def test_value_head_gets_its_own_learning_rate(policy, tmp_path):
    ppo = _ppo(policy, tmp_path, lr=1e-5, value_lr=1e-3)
    groups = ppo.optimizer.param_groups
    assert [g["lr"] for g in groups] == [1e-5, 1e-3]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in policy.value_parameters()}
    same = _ppo(policy, tmp_path, lr=1e-5, value_lr=0.0)
    assert [g["lr"] for g in same.optimizer.param_groups] == [1e-5, 1e-5]

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from advx.rollout import Prompt, Rewards, Rollout
from advx_reinforce.reinforce import reward_to_go
from advx_seqgan.mc_rollout import MCRolloutConfig, MCRolloutReward

from .conftest import step_ctx

EMPTY = Prompt("")


def share_of_small(rollout: Rollout, ctx) -> torch.Tensor:
    """A sequence-level reward: the share of tokens below 10."""
    return torch.tensor([sum(int(t) < 10 for t in x.split()) / len(x.split())
                         for x in rollout.texts])


class Deterministic:
    """A generator whose continuations are fixed: every completed token is 3."""

    calls: ClassVar[list[int]] = []

    def __init__(self, rollout: Rollout) -> None:
        self.rollout = rollout

    def parameters(self):
        return []

    def complete(self, rollout: Rollout, rows, prefix_lengths) -> Rollout:
        Deterministic.calls.append(len(rows))
        ids = rollout.response_ids[rows].clone()
        keep = torch.arange(ids.shape[1])[None, :] < prefix_lengths[:, None]
        ids = torch.where(keep, ids, torch.full_like(ids, 3))
        sub = rollout.select(rows)
        sub.response_ids = ids
        sub.texts = [" ".join(str(int(i)) for i in row) for row in ids]
        return sub


def exact_q(rollout: Rollout) -> torch.Tensor:
    q = torch.zeros(rollout.response_ids.shape)
    T = rollout.response_ids.shape[1]
    for b, row in enumerate(rollout.response_ids.tolist()):
        for t in range(1, T + 1):
            seq = row[:t] + [3] * (T - t)
            q[b, t - 1] = sum(x < 10 for x in seq) / T
    return q


def test_last_token_is_the_wrapped_reward(tiny_lstm):
    rollout = tiny_lstm.sample([EMPTY] * 5)
    reward = MCRolloutReward(MCRolloutConfig(rollouts=3), share_of_small)
    rewards = reward(rollout, step_ctx(tiny_lstm))
    full = share_of_small(rollout, None)
    assert torch.allclose(reward.last_q[:, -1], full)
    assert torch.allclose(rewards.per_token[:, -1], full)
    assert torch.allclose(rewards.terms["disc_prob"], full)


def test_deterministic_generator_gives_the_exact_value(tiny_lstm):
    rollout = tiny_lstm.sample([EMPTY] * 4)
    Deterministic.calls = []
    reward = MCRolloutReward(MCRolloutConfig(rollouts=5), share_of_small)
    reward.policy = Deterministic(rollout)
    rewards = reward(rollout, step_ctx(Deterministic(rollout)))
    assert torch.allclose(reward.last_q, exact_q(rollout), atol=1e-6)
    # telescoped per-token rewards: the reward-to-go is Q_t
    mask = rollout.response_mask.float()
    assert torch.allclose(reward_to_go(rewards.per_token, mask), exact_q(rollout), atol=1e-6)
    assert torch.allclose(rewards.total, exact_q(rollout)[:, 0], atol=1e-6)
    # batched: ONE complete call with B x N x (T - 1) rows
    assert Deterministic.calls == [4 * 5 * 5]


def test_q_mode_and_variable_lengths():
    """Rows of different length (EOS): Q is 0 on padding, D(full) at each row's last token."""
    ids = torch.tensor([[1, 2, 3, 0], [11, 12, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    rollout = Rollout(
        prompts=[EMPTY] * 2, prompt_ids=torch.zeros(2, 0, dtype=torch.long),
        prompt_mask=torch.zeros(2, 0, dtype=torch.long), response_ids=ids, response_mask=mask,
        logprobs=torch.zeros(2, 4), texts=["1 2 3", "11 12"], group_ids=torch.arange(2),
    )
    reward = MCRolloutReward(MCRolloutConfig(rollouts=2, per_token="q"), share_of_small)
    reward.policy = Deterministic(rollout)
    rewards = reward(rollout, step_ctx(Deterministic(rollout)))
    assert rewards.per_token[0, 2] == 1.0 and rewards.per_token[1, 1] == 0.0
    assert rewards.per_token[0, 3] == 0 and bool((rewards.per_token[1, 2:] == 0).all())


def test_rollout_policy_lags_with_update_rate(tiny_lstm):
    reward = MCRolloutReward(MCRolloutConfig(update_rate=0.8), share_of_small)
    policy = reward.sync_policy(tiny_lstm)
    before = [p.clone() for p in policy.parameters()]
    with torch.no_grad():
        for p in tiny_lstm.parameters():
            p.add_(1.0)
    reward.sync_policy(tiny_lstm)
    for old, lagged, new in zip(before, policy.parameters(), tiny_lstm.parameters(), strict=True):
        assert torch.allclose(lagged, 0.8 * old + 0.2 * new, atol=1e-6)
    state = reward.state_dict()
    fresh = MCRolloutReward(MCRolloutConfig(), share_of_small)
    fresh.load_state_dict(state)
    restored = fresh.sync_policy(tiny_lstm)
    assert all(torch.equal(a, b) for a, b in zip(restored.parameters(), policy.parameters(),
                                                 strict=True))


def test_classifier_is_the_default_reward(tiny_lstm):
    class Half:
        def predict_proba(self, samples):
            return torch.tensor([[0.25, 0.75]] * len(samples))

    rollout = tiny_lstm.sample([EMPTY] * 3)
    rewards = MCRolloutReward(MCRolloutConfig(rollouts=2))(rollout, step_ctx(tiny_lstm, Half()))
    assert isinstance(rewards, Rewards)
    assert torch.allclose(rewards.total, torch.full((3,), 0.75))


def test_bad_config_is_a_config_error():
    """``per_token`` is an Enum choice: the recipe validator names the key and the choices."""
    from pathlib import Path

    from advx.errors import ConfigError
    from advx.plugins import get_registry
    from advx.recipe import load_recipe, validate_recipe

    recipe = Path(__file__).parents[2] / "recipes" / "seqgan_oracle_cpu.yaml"
    with pytest.raises(ConfigError, match=r"reward.per_token: 'sum' is not one of telescoped, q"):
        validate_recipe(load_recipe(recipe, ["reward.per_token=sum"]), get_registry())


# ------------------------------------------------------------------- build-time contract


class _NoCompletion:
    """A generator without ``complete`` (what the MC reward needs)."""

    def parameters(self):
        return []


def test_generator_without_completion_fails_when_the_reward_is_built(tmp_path):
    from advx.components import BuildContext
    from advx.errors import PluginError
    from advx_seqgan.mc_rollout import build_mc_rollout

    ctx = BuildContext(run_dir=tmp_path, seed=0, device="cpu", generator=_NoCompletion())
    ctx.names["generator"] = "plain"
    with pytest.raises(PluginError) as err:
        build_mc_rollout(MCRolloutConfig(), ctx)
    message = str(err.value)
    assert "generator 'plain' (_NoCompletion) lacks complete()" in message
    assert "reward 'mc_rollout'" in message and "SupportsCompletion" in message


def test_wrapped_reward_is_built_from_the_context_registry(tmp_path, tiny_lstm):
    """The inner reward comes from ``ctx.registry`` (here one the process-wide plugin manager
    does not know), validated like a recipe block."""
    from dataclasses import dataclass

    from advx.components import BuildContext
    from advx.errors import ConfigError
    from advx.plugins import ComponentSpec, Registry
    from advx_seqgan.mc_rollout import build_mc_rollout

    @dataclass
    class SmallCfg:
        scale: float = 1.0

    class Small:
        def __init__(self, config, ctx):
            self.scale = config.scale

        def __call__(self, rollout, ctx):
            return Rewards.at_end(self.scale * share_of_small(rollout, ctx), rollout)

    registry = Registry()
    registry.add(ComponentSpec("reward", "share_of_small", Small, SmallCfg, "t", "t"))
    ctx = BuildContext(run_dir=tmp_path, seed=0, device="cpu", generator=tiny_lstm,
                       registry=registry)
    reward = build_mc_rollout(
        MCRolloutConfig(rollouts=2, wrapped={"name": "share_of_small", "scale": 2.0}), ctx
    )
    rollout = tiny_lstm.sample([EMPTY] * 3)
    reward(rollout, step_ctx(tiny_lstm))
    assert torch.allclose(reward.last_q[:, -1], 2.0 * share_of_small(rollout, None))
    with pytest.raises(ConfigError, match=r"reward\.wrapped\.scal"):
        build_mc_rollout(MCRolloutConfig(wrapped={"name": "share_of_small", "scal": 2}), ctx)

"""The cls_loss reward: KL at every token, classifier and log-prob terms at EOS only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from advx.components import StepContext
from advx.errors import ConfigError
from advx.rollout import Prompt, Rollout
from advx_cls_loss import ClsLossConfig, ClsLossReward
from ppo_toy import LengthClassifier


def _rollout() -> Rollout:
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    logprobs = torch.tensor([[-1.0, -2.0, -0.5, 0.0], [-0.2, -0.3, 0.0, 0.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5, -4.0], [-0.2, -1.3, -3.0, 0.0]])
    return Rollout(
        prompts=[Prompt("p", {"label": 1}), Prompt("q", {"label": 0})],
        prompt_ids=torch.zeros(2, 1, dtype=torch.long),
        prompt_mask=torch.ones(2, 1, dtype=torch.long),
        response_ids=torch.ones(2, 4, dtype=torch.long),
        response_mask=mask,
        logprobs=logprobs,
        texts=["a b c", "d e"],  # LengthClassifier: L_cls = word count = 3 and 2
        group_ids=torch.arange(2),
        ref_logprobs=ref,
    )


def _ctx(classifier=None) -> StepContext:
    return StepContext(
        task=None, generator=None, classifier=classifier or LengthClassifier(),
        reference=None, round=1, step=0, rng=np.random.default_rng(0),
    )  # fmt: skip


def test_kl_on_every_token_and_sequence_terms_at_eos_only():
    alpha, beta = 0.7, 0.1
    rewards = ClsLossReward(ClsLossConfig(alpha=alpha, beta=beta))(_rollout(), _ctx())
    kl = torch.tensor([[0.5, -1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    log_p = torch.tensor([-3.5, -0.5])
    cls = torch.tensor([3.0, 2.0])
    expected = -beta * kl
    expected[0, 2] += alpha * cls[0] - (1 - alpha) * log_p[0]
    expected[1, 1] += alpha * cls[1] - (1 - alpha) * log_p[1]
    torch.testing.assert_close(rewards.per_token, expected)
    torch.testing.assert_close(rewards.terms["cls_loss"], cls)
    torch.testing.assert_close(rewards.terms["log_p_gen"], log_p)
    torch.testing.assert_close(rewards.terms["kl"], kl.sum(-1))
    torch.testing.assert_close(rewards.terms["total"], expected.sum(-1))
    assert set(rewards.summary()) >= {"reward/cls_loss", "reward/log_p_gen", "reward/kl"}


def test_before_eos_only_the_kl_penalty():
    rewards = ClsLossReward(ClsLossConfig(alpha=0.7, beta=0.0))(_rollout(), _ctx())
    assert rewards.per_token[0, :2].abs().sum() == 0 and rewards.per_token[1, 0] == 0
    assert (rewards.per_token[_rollout().response_mask == 0] == 0).all()  # padding: nothing


def test_low_probability_queries_are_rewarded_as_the_paper_writes():
    """α = 0: R(T) = −log P_gen > 0, larger for the less likely response."""
    rewards = ClsLossReward(ClsLossConfig(alpha=0.0, beta=0.0))(_rollout(), _ctx())
    assert rewards.total[0] == pytest.approx(3.5) and rewards.total[1] == pytest.approx(0.5)


def test_length_normalised_log_p_gen():
    rewards = ClsLossReward(ClsLossConfig(alpha=0.0, beta=0.0, length_normalize=True))(
        _rollout(), _ctx()
    )
    torch.testing.assert_close(rewards.terms["log_p_gen"], torch.tensor([-3.5 / 3, -0.5 / 2]))


def test_missing_reference_is_a_config_error():
    rollout = _rollout()
    rollout.ref_logprobs = None
    with pytest.raises(ConfigError, match="use_reference"):
        ClsLossReward(ClsLossConfig(beta=0.1))(rollout, _ctx())
    ClsLossReward(ClsLossConfig(beta=0.0))(rollout, _ctx())  # fine without a KL term


def test_alpha_out_of_range():
    with pytest.raises(ConfigError, match="alpha"):
        ClsLossReward(ClsLossConfig(alpha=1.5))


def test_infinite_log_probs_at_padding_never_make_nan():
    """A generator may leave -inf (a masked-out logit) on padding; -inf · 0 would be NaN."""
    rollout = _rollout()
    padding = rollout.response_mask == 0
    expected = ClsLossReward(ClsLossConfig(alpha=0.5, beta=0.1))(rollout, _ctx())
    rollout.logprobs = rollout.logprobs.masked_fill(padding, float("-inf"))
    rollout.ref_logprobs = rollout.ref_logprobs.masked_fill(padding, float("-inf"))
    rewards = ClsLossReward(ClsLossConfig(alpha=0.5, beta=0.1))(rollout, _ctx())
    assert torch.isfinite(rewards.per_token).all()
    for name, term in rewards.terms.items():
        assert torch.isfinite(term).all(), name
        torch.testing.assert_close(term, expected.terms[name])

"""PPO maths on hand-computable cases: GAE, whitening, clipping, value clipping, masking."""

from __future__ import annotations

import pytest
import torch
from advx_ppo import gae, policy_loss, value_loss, whiten


def test_gae_hand_computed_with_padding():
    rewards = torch.tensor([[0.0, 0.0, 1.0, 5.0]])  # 5.0 sits on padding: must be ignored
    values = torch.tensor([[0.5, 0.4, 0.3, 9.0]])  # 9.0 sits on padding: V = 0 past the end
    mask = torch.tensor([[1, 1, 1, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.5)
    # δ2 = 1 − 0.3 = 0.7; δ1 = 0.9·0.3 − 0.4 = −0.13; δ0 = 0.9·0.4 − 0.5 = −0.14
    # A2 = 0.7; A1 = −0.13 + 0.45·0.7 = 0.185; A0 = −0.14 + 0.45·0.185 = −0.05675
    torch.testing.assert_close(advantages, torch.tensor([[-0.05675, 0.185, 0.7, 0.0]]))
    torch.testing.assert_close(returns, torch.tensor([[0.44325, 0.585, 1.0, 0.0]]))


def test_gae_monte_carlo_limit():
    """γ = λ = 1: A_t = (sum of future rewards) − V(s_t), per row, rows of different lengths."""
    rewards = torch.tensor([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]])
    values = torch.tensor([[1.0, 1.0, 1.0], [0.5, 0.5, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    torch.testing.assert_close(returns, torch.tensor([[3.0, 2.0, 2.0], [3.0, 3.0, 0.0]]))
    torch.testing.assert_close(advantages, torch.tensor([[2.0, 1.0, 1.0], [2.5, 2.5, 0.0]]))


def test_gae_lambda_zero_is_one_step_td():
    rewards = torch.tensor([[1.0, 2.0]])
    values = torch.tensor([[0.5, 0.25]])
    advantages, _ = gae(rewards, values, torch.ones(1, 2), gamma=0.5, lam=0.0)
    torch.testing.assert_close(advantages, torch.tensor([[1.0 + 0.5 * 0.25 - 0.5, 2.0 - 0.25]]))


def test_whiten_masked():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    w = whiten(x, mask)
    std = (2.0 / 3.0) ** 0.5  # population std of 1, 2, 3
    torch.testing.assert_close(w, torch.tensor([[-1 / std, 0.0, 1 / std, 0.0]]))


def _grad_of_policy_loss(new: float, old: float, advantage: float, clip: float = 0.2):
    logprobs = torch.tensor([[new]], requires_grad=True)
    loss, stats = policy_loss(
        logprobs, torch.tensor([[old]]), torch.tensor([[advantage]]), torch.ones(1, 1), clip
    )
    loss.backward()
    return loss.item(), logprobs.grad.item(), stats


@pytest.mark.parametrize(
    ("ratio", "advantage", "clipped"),
    [
        (1.5, 1.0, True),  # above 1+ε with A > 0: no incentive to push further
        (0.5, -1.0, True),  # below 1−ε with A < 0: no incentive to push further
        (1.5, -1.0, False),  # above 1+ε with A < 0: the pessimistic term keeps its gradient
        (0.5, 1.0, False),  # below 1−ε with A > 0: still pulled up
        (1.1, 1.0, False),  # inside the trust region
    ],
)
def test_clipping_zeroes_the_gradient_outside_the_region(ratio, advantage, clipped):
    old = -1.0
    new = old + float(torch.log(torch.tensor(ratio)))
    loss, grad, stats = _grad_of_policy_loss(new, old, advantage)
    if clipped:
        assert grad == 0.0
        bound = 1.2 if ratio > 1 else 0.8
        assert loss == pytest.approx(-bound * advantage)
    else:
        # d/dlogπ of −ρA is −ρA
        assert grad == pytest.approx(-ratio * advantage, rel=1e-5)
        assert loss == pytest.approx(-ratio * advantage, rel=1e-5)
    assert stats["clipfrac"].item() == (1.0 if abs(ratio - 1) > 0.2 else 0.0)


def test_policy_loss_ignores_padding_and_reports_kl():
    logprobs = torch.tensor([[-1.0, -2.0, 7.0]], requires_grad=True)
    old = torch.tensor([[-1.0, -2.0, 0.0]])
    mask = torch.tensor([[1, 1, 0]])
    loss, stats = policy_loss(logprobs, old, torch.tensor([[1.0, -1.0, 50.0]]), mask, 0.2)
    loss.backward()
    assert loss.item() == pytest.approx(0.0)  # ratio 1: −mean(1, −1)
    assert logprobs.grad[0, 2] == 0.0
    assert stats["approx_kl"].item() == pytest.approx(0.0)
    assert stats["ratio"].item() == pytest.approx(1.0)


def test_value_loss_clipping():
    old = torch.tensor([[0.0]])
    target = torch.tensor([[1.0]])
    v = torch.tensor([[0.5]], requires_grad=True)
    loss = value_loss(v, old, target, torch.ones(1, 1), clip=0.2)
    loss.backward()
    # clipped prediction 0.2 is further from the target (0.64 > 0.25): the max picks it,
    # whose gradient w.r.t. v is 0 (v − old is outside ±0.2)
    assert loss.item() == pytest.approx(0.5 * 0.64)
    assert v.grad.item() == 0.0
    v2 = torch.tensor([[0.5]], requires_grad=True)
    unclipped = value_loss(v2, old, target, torch.ones(1, 1), clip=0.0)
    unclipped.backward()
    assert unclipped.item() == pytest.approx(0.5 * 0.25)
    assert v2.grad.item() == pytest.approx(-0.5)


def test_running_std_matches_numpy_and_roundtrips():
    import numpy as np
    from advx_ppo.ppo import RunningMoments

    values = np.random.default_rng(0).normal(3.0, 2.0, size=50)
    stats = RunningMoments()
    stats.update(torch.tensor(values[:20]))
    stats.update(torch.tensor(values[20:]))
    assert stats.std == pytest.approx(values.std(ddof=1))
    assert stats.mean == pytest.approx(values.mean())
    copy = RunningMoments()
    copy.load_state_dict(stats.state_dict())
    assert copy.std == stats.std
    assert RunningMoments().std == 1.0  # no data yet: no scaling

"""GRPO's pieces against hand computation: group normalisation, clipped loss, k3, aggregation."""

from __future__ import annotations

import math

import pytest
import torch
from advx_grpo.grpo import aggregate, clipped_surrogate, group_advantages, k3_kl


def test_group_normalisation_by_hand():
    rewards = torch.tensor([1.0, 2.0, 3.0, 10.0, 10.0, 10.0])
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    adv = group_advantages(rewards, groups, "group", eps=0.0 + 1e-4)
    # group 0: mean 2, unbiased std 1 → (−1, 0, 1)/(1+1e-4); group 1: all equal → 0
    expected = torch.tensor([-1.0, 0.0, 1.0, 0.0, 0.0, 0.0]) / (1 + 1e-4)
    torch.testing.assert_close(adv, expected)


def test_group_normalisation_matches_trl_formula_with_interleaved_groups():
    torch.manual_seed(0)
    rewards = torch.randn(12)
    groups = torch.arange(3).repeat_interleave(4)
    grouped = rewards.view(3, 4)
    trl = (rewards - grouped.mean(1).repeat_interleave(4)) / (
        grouped.std(1).repeat_interleave(4) + 1e-4
    )
    torch.testing.assert_close(group_advantages(rewards, groups), trl)
    perm = torch.randperm(12)  # rows need not be contiguous
    torch.testing.assert_close(group_advantages(rewards[perm], groups[perm]), trl[perm])
    centred = group_advantages(rewards, groups, "none")
    torch.testing.assert_close(centred.view(3, 4).sum(1), torch.zeros(3), atol=1e-6, rtol=0)


def test_clipped_loss_hand_computed_case():
    # ratios 1.5 (clipped above for A>0), 0.5 (clipped below for A<0), 1.1 (inside)
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))
    adv = torch.tensor([2.0])
    loss = clipped_surrogate(new, old, adv, 0.2, 0.2)
    # A=2: −min(1.5·2, 1.2·2) = −2.4; −min(0.5·2, 0.8·2) = −1.0; −min(2.2, 2.2) = −2.2
    torch.testing.assert_close(loss, torch.tensor([[-2.4, -1.0, -2.2]]))
    neg = clipped_surrogate(new, old, torch.tensor([-1.0]), 0.2, 0.2)
    # A=−1: −min(−1.5, −1.2) = 1.5; −min(−0.5, −0.8) = 0.8; 1.1
    torch.testing.assert_close(neg, torch.tensor([[1.5, 0.8, 1.1]]))


def test_k3_is_nonnegative_and_zero_at_equality():
    logp = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.0, -1.0]])
    kl = k3_kl(logp, ref)
    assert float(kl[0, 0]) == 0.0
    assert float(kl[0, 1]) == pytest.approx(math.e - 1 - 1)  # exp(1) − 1 − 1


def test_aggregations():
    per_token = torch.tensor([[1.0, 3.0, 0.0], [2.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert float(aggregate(per_token, mask, "grpo")) == pytest.approx((2.0 + 2.0) / 2)
    assert float(aggregate(per_token, mask, "bnpo")) == pytest.approx(6.0 / 3)
    assert float(aggregate(per_token, mask, "dapo", num_items=6)) == pytest.approx(1.0)
    assert float(aggregate(per_token, mask, "dr_grpo", max_len=4)) == pytest.approx(6.0 / 8)

"""AdaGRPO's gate: open only when BOTH diagnostics pass; each diagnostic mode; NaN closes."""

from __future__ import annotations

import math

import pytest
import torch
from advx_grpo.adagrpo import AdaGRPOConfig, Diagnostics, gate


def diag(**values) -> Diagnostics:
    base = dict(gt_in_rollouts=0.0, gt_logprob=-10.0, rollout_entropy=3.0,
                disc_share=1.0, disc_margin=2.0)
    base.update(values)
    return Diagnostics(**{k: torch.tensor([float(v)]) for k, v in base.items()})


@pytest.mark.parametrize(
    ("gt_in", "share", "hard", "discriminable", "open_"),
    [
        (0.0, 0.9, True, True, True),     # difficult and discriminable: GRPO admitted
        (0.0, 0.1, True, False, False),   # ranker cannot tell the truth from negatives
        (1.0, 0.9, False, True, False),   # policy already finds the truth
        (1.0, 0.1, False, False, False),
    ],
)
def test_truth_table_miss_share(gt_in, share, hard, discriminable, open_):
    cfg = AdaGRPOConfig(difficulty="miss", discriminability="share",
                        discriminability_threshold=0.5)
    h, d, g = gate(diag(gt_in_rollouts=gt_in, disc_share=share), cfg)
    assert (bool(h), bool(d), bool(g)) == (hard, discriminable, open_)


def test_difficulty_modes_use_their_threshold():
    logprob = AdaGRPOConfig(difficulty="logprob", difficulty_threshold=-5.0)
    assert bool(gate(diag(gt_logprob=-6.0), logprob)[0])
    assert not bool(gate(diag(gt_logprob=-4.0), logprob)[0])
    entropy = AdaGRPOConfig(difficulty="entropy", difficulty_threshold=2.0)
    assert bool(gate(diag(rollout_entropy=2.5), entropy)[0])
    assert not bool(gate(diag(rollout_entropy=1.5), entropy)[0])


def test_margin_mode_and_missing_negatives():
    margin = AdaGRPOConfig(discriminability="margin", discriminability_threshold=0.5)
    assert bool(gate(diag(disc_margin=0.6), margin)[1])
    assert not bool(gate(diag(disc_margin=0.4), margin)[1])
    share = AdaGRPOConfig(discriminability="share", discriminability_threshold=0.0)
    _, d, g = gate(diag(disc_share=math.nan), share)  # no valid negatives: not discriminable
    assert not bool(d) and not bool(g)


def test_fixed_mixture_and_nll_only_ignore_the_diagnostics():
    fails = diag(gt_in_rollouts=1.0, disc_share=0.0)
    passes = diag()
    assert bool(gate(fails, AdaGRPOConfig(gate="always"))[2])
    assert not bool(gate(passes, AdaGRPOConfig(gate="never"))[2])
    assert bool(gate(passes, AdaGRPOConfig(gate="adaptive"))[2])

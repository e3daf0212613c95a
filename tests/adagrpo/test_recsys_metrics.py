"""Full-ranking HR@k / NDCG@k on hand-made rankings, and the rank of a target among scores."""

from __future__ import annotations

import math

import pytest
import torch
from advx_recsys.metrics import metrics_from_ranks, target_ranks


def test_hr_and_ndcg_on_a_hand_made_ranking():
    # four users; the truth sits at ranks 0, 3, 9 and 10 (0-based)
    out = metrics_from_ranks([0, 3, 9, 10], ks=(5, 10))
    assert out["hr@5"] == pytest.approx(2 / 4)
    assert out["hr@10"] == pytest.approx(3 / 4)  # rank 10 is the 11th item: a miss at 10
    assert out["ndcg@5"] == pytest.approx((1 + 1 / math.log2(5)) / 4)
    assert out["ndcg@10"] == pytest.approx((1 + 1 / math.log2(5) + 1 / math.log2(11)) / 4)


def test_target_rank_counts_strictly_better_items_and_respects_exclusions():
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.7, 0.5],
                           [0.2, 0.3, 0.1, 0.0, 0.4]])
    targets = torch.tensor([2, 4])
    assert target_ranks(scores, targets).tolist() == [2, 0]  # ties do not count against
    history = torch.tensor([[True, False, True, False, False],  # the target itself competes
                            [False, False, False, False, False]])
    assert target_ranks(scores, targets, history).tolist() == [1, 0]

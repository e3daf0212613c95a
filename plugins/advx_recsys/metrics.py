"""Full-ranking metrics from ranks: HR@k and NDCG@k with one relevant item per user.

``rank`` is the 0-based position of the ground-truth item in the user's ranking of the whole
catalogue (0 = first). With one relevant item, HR@k = share of users with rank < k and
NDCG@k = mean of 1/log2(rank + 2) over users with rank < k (IDCG = 1). This is the
leave-one-out, all-items protocol of the SASRec/TIGER tables on Amazon Beauty.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["metrics_from_ranks", "target_ranks"]


def target_ranks(scores: Tensor, targets: Tensor, exclude: Tensor | None = None) -> Tensor:
    """``[N]`` 0-based rank of ``targets[n]`` among ``scores[n]`` (``[N, I]``).

    The rank counts the items scored strictly higher than the target (ties count in the
    target's favour, as an argsort-based rank with the target first would). ``exclude``
    (``[N, I]`` bool) removes items from the competition (e.g. the user's history); the
    target itself is never excluded.
    """
    target_scores = scores.gather(1, targets[:, None])
    above = scores > target_scores
    if exclude is not None:
        keep = ~exclude
        keep.scatter_(1, targets[:, None], True)
        above &= keep
    return above.sum(-1)


def metrics_from_ranks(ranks: Tensor | Sequence[float], ks: Sequence[int] = (5, 10)
                       ) -> dict[str, float]:
    """``hr@k`` and ``ndcg@k`` for every k in ``ks`` (means over users)."""
    ranks = torch.as_tensor(ranks, dtype=torch.float64)
    n = max(len(ranks), 1)
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks < k
        out[f"hr@{k}"] = float(hit.sum()) / n
        out[f"ndcg@{k}"] = float((1.0 / torch.log2(ranks[hit] + 2)).sum()) / n
    return out

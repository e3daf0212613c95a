"""Most-popular baselines and bootstrap standard errors for the ``next_item`` task.

A generative recommender's HR@10 means little without the score of the simplest list: the
ten items most often interacted with. Two baselines, scored on exactly the users the model is
evaluated on (``task.eval_sets``), computed once per run and logged as ``baseline/...``:

* ``most_popular``: the same ``topk`` items for everyone, by interaction count in the training
  part of every user's sequence (all items but the last two, so no validation or test target
  is counted; ties by catalogue order);
* ``most_popular_unseen``: the most popular items the user has not interacted with yet (the
  example's history is removed from the list first).

Standard errors: HR and NDCG are means over users, so their SE is the bootstrap SE of the
per-user hit / gain (:func:`advx.uncertainty.mean_se`); ``_resolvable`` = 2 × 1.96 × SE.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from advx.uncertainty import mean_se, with_uncertainty

__all__ = ["per_user", "popularity", "popularity_baselines", "ranking_uncertainty"]


def per_user(ranked: Sequence[Sequence[str | None]], targets: Sequence[str],
             k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-user hit@k (0/1) and NDCG@k (1/log2(rank+2) on a hit), whose means are HR@k and
    NDCG@k of :func:`advx_recsys.task.ranking_metrics`."""
    hits, gains = [], []
    for items, target in zip(ranked, targets, strict=True):
        rank = list(items).index(target) if target in items else math.inf
        hits.append(float(rank < k))
        gains.append(1.0 / math.log2(rank + 2) if rank < k else 0.0)
    return np.array(hits), np.array(gains)


def ranking_uncertainty(prefix: str, ranked: Sequence[Sequence[str | None]],
                        targets: Sequence[str], ks: Iterable[int],
                        warned: set[str] | None = None) -> dict[str, float]:
    """``<prefix>/hr@k_se``, ``<prefix>/ndcg@K_se`` (K = max k) and their ``_resolvable``;
    warns when HR@K's resolvable difference exceeds the documented threshold."""
    ks = sorted(ks)
    ses: dict[str, float] = {}
    for k in ks:
        hits, gains = per_user(ranked, targets, k)
        ses[f"{prefix}/hr@{k}"] = mean_se(hits)
        if k == ks[-1]:
            ses[f"{prefix}/ndcg@{k}"] = mean_se(gains)
    return with_uncertainty({}, ses, warn_keys=(f"{prefix}/hr@{ks[-1]}",), warned=warned)


def popularity(sequences: Iterable[Sequence[str]]) -> Counter:
    """Interaction counts over the training part of each sequence (never the last two)."""
    counts: Counter = Counter()
    for seq in sequences:
        counts.update(seq[:-2])
    return counts


def _ranked_popular(counts: Mapping[str, int], catalogue: Sequence[str]) -> list[str]:
    order = {item: i for i, item in enumerate(catalogue)}
    return sorted(counts, key=lambda item: (-counts[item], order.get(item, len(order))))


def popularity_baselines(eval_sets: Mapping[str, Sequence[Any]], counts: Mapping[str, int],
                         catalogue: Sequence[str], topk: int,
                         ks: Sequence[int]) -> dict[str, float]:
    """``baseline/{most_popular,most_popular_unseen}/<split>/{hr@k,ndcg@K}`` and their
    ``_se``, on the examples of each evaluated split (``.history``, ``.target``)."""
    popular = _ranked_popular(counts, catalogue)
    ks = sorted(ks)
    out: dict[str, float] = {}
    for split, examples in eval_sets.items():
        targets = [e.target for e in examples]
        lists = {
            "most_popular": [popular[:topk]] * len(examples),
            "most_popular_unseen": [_unseen(popular, set(e.history), topk) for e in examples],
        }
        for name, ranked in lists.items():
            prefix = f"baseline/{name}/{split}"
            for k in ks:
                hits, gains = per_user(ranked, targets, k)
                out[f"{prefix}/hr@{k}"] = float(hits.mean()) if len(hits) else 0.0
                out[f"{prefix}/hr@{k}_se"] = mean_se(hits)
            out[f"{prefix}/ndcg@{max(ks)}"] = float(gains.mean()) if len(gains) else 0.0
            out[f"{prefix}/ndcg@{max(ks)}_se"] = mean_se(gains)
    return out


def _unseen(popular: Sequence[str], seen: set[str], topk: int) -> list[str]:
    out: list[str] = []
    for item in popular:
        if item not in seen:
            out.append(item)
            if len(out) == topk:
                break
    return out

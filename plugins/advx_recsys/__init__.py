"""advx plugin ``recsys``: generative next-item recommendation.

Task ``next_item`` (leave-one-out, item tokens or semantic ids from hierarchical k-means or
TIGER's RQ-VAE, HR@k / NDCG@k / hallucination, optionally constrained beam search),
classifier ``ranker`` (SASRec reward model trained on the training split, full-ranking
evaluation) and reward ``ranker_score``. Also: ``metrics`` (HR/NDCG from ranks), ``strata``
(the AdaGRPO stratified analysis, ``python -m advx_recsys.strata``) and ``timing``
(``python -m advx_recsys.timing``: semantic-id and evaluation cost on a dataset).
"""

from __future__ import annotations

import advx

from advx_recsys.ranker import RankerConfig, SASRecRanker, build_ranker
from advx_recsys.reward import RankerScoreConfig, RankerScoreReward, build_ranker_score
from advx_recsys.task import NextItemConfig, NextItemTask, build_next_item, ranking_metrics

__all__ = [
    "NextItemConfig",
    "NextItemTask",
    "RankerConfig",
    "RankerScoreConfig",
    "RankerScoreReward",
    "SASRecRanker",
    "build_next_item",
    "build_ranker",
    "build_ranker_score",
    "ranking_metrics",
]


@advx.hookimpl
def advx_register_tasks(register: advx.hookspecs.Register) -> None:
    register("next_item", build_next_item, NextItemConfig)


@advx.hookimpl
def advx_register_classifiers(register: advx.hookspecs.Register) -> None:
    register("ranker", build_ranker, RankerConfig)


@advx.hookimpl
def advx_register_rewards(register: advx.hookspecs.Register) -> None:
    register("ranker_score", build_ranker_score, RankerScoreConfig)

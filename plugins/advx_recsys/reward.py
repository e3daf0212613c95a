"""Reward ``ranker_score``: the ranker's opinion of each generated item, paid at the end.

For rollout row b with prompt history h_b and generated text y_b:

    r_b = transform(score(h_b, item(y_b)))   if y_b names a catalogue item
    r_b = invalid_penalty                    otherwise (a hallucination)

``transform``: ``percentile`` (share of catalogue items the generated one outscores, in
[0, 1]: scale-free, so the penalty is comparable), ``sigmoid`` or ``raw``. Terms logged per
row: ``ranker_score`` (raw score, 0 when invalid), ``valid`` and ``hit`` (generated item ==
ground truth; logged only, never part of the reward: the ranker alone is the reward model).

Also callable TRL-style, ``reward(prompts, completions, histories=...)`` → list of floats,
so the same reward plugs into ``trl.GRPOTrainer(reward_funcs=[...])``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from advx.choices import Choice
from advx.components import BuildContext, ItemCatalogue, ItemScorer, StepContext, require
from advx.errors import ConfigError
from advx.rollout import Rewards, Rollout

__all__ = ["RankerScoreConfig", "RankerScoreReward", "build_ranker_score"]


class Transform(Choice):
    """``reward.transform`` of ``ranker_score``."""

    percentile = "percentile"
    sigmoid = "sigmoid"
    raw = "raw"


@dataclass
class RankerScoreConfig:
    """The ``reward:`` block for ``name: ranker_score``.

    Attributes:
        transform: ``percentile``, ``sigmoid`` or ``raw``.
        invalid_penalty: reward of an output that maps to no item.
    """

    transform: Transform = Transform.percentile
    invalid_penalty: float = -1.0


class RankerScoreReward:
    """The ``ranker_score`` reward: an :class:`ItemScorer` classifier's opinion of the item an
    :class:`ItemCatalogue` task reads in each generated text."""

    def __init__(self, config: RankerScoreConfig, task: ItemCatalogue, ranker: ItemScorer) -> None:
        self.config = config
        self.task = task
        self.ranker = ranker

    def sequence_rewards(
        self, histories: Sequence[Sequence[str]], texts: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """Per-row ``reward``, ``ranker_score`` and ``valid`` for generated ``texts``."""
        items = [self.task.item_of(t) for t in texts]
        valid = torch.tensor([i is not None for i in items], dtype=torch.bool)
        raw = torch.zeros(len(texts))
        reward = torch.full((len(texts),), float(self.config.invalid_penalty))
        rows = [n for n, i in enumerate(items) if i is not None]
        if rows:
            hist = [histories[n] for n in rows]
            picked = [items[n] for n in rows]
            if self.config.transform == "percentile":
                # the item's own score is read from the matrix it is compared with: a separately
                # computed dot product can differ in the last bit and count the item against
                # itself, moving the percentile by one catalogue item
                all_scores = self.ranker.score_all(hist).float().cpu()
                columns = torch.tensor([self.task.index[i] for i in picked])
                scores = all_scores.gather(1, columns[:, None])[:, 0]
                value = (all_scores < scores[:, None]).float().mean(-1)
            else:
                scores = self.ranker.score(hist, picked).float().cpu()
                value = torch.sigmoid(scores) if self.config.transform == "sigmoid" else scores
            raw[rows] = scores
            reward[rows] = value
        return {"reward": reward, "ranker_score": raw, "valid": valid.float()}

    def __call__(self, rollout: Rollout | Sequence[Any], ctx: StepContext | Any = None,
                 **kwargs: Any) -> Rewards | list[float]:
        if not isinstance(rollout, Rollout):  # TRL reward-function signature
            completions = kwargs.get("completions", ctx)
            out = self.sequence_rewards(kwargs["histories"], list(completions))
            return out["reward"].tolist()
        histories = [p.meta["history"] for p in rollout.prompts]
        out = self.sequence_rewards(histories, rollout.texts)
        hit = torch.tensor([
            float(self.task.item_of(t) == p.meta.get("target"))
            for t, p in zip(rollout.texts, rollout.prompts, strict=True)
        ])
        device = rollout.response_ids.device
        return Rewards.at_end(
            out["reward"].to(device), rollout,
            ranker_score=out["ranker_score"].to(device), valid=out["valid"].to(device),
            hit=hit.to(device),
        )


def build_ranker_score(config: RankerScoreConfig, ctx: BuildContext) -> RankerScoreReward:
    if ctx.classifier is None or ctx.task is None:
        raise ConfigError("reward ranker_score needs a task and a classifier that scores items "
                          "(task.name: next_item, classifier.name: ranker)")
    needed_by = "reward 'ranker_score'"
    require(ctx.task, ItemCatalogue, role=ctx.describe("task"), needed_by=needed_by)
    require(ctx.classifier, ItemScorer, role=ctx.describe("classifier"), needed_by=needed_by)
    return RankerScoreReward(config, ctx.task, ctx.classifier)

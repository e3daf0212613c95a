"""An example third-party advx plugin: a ``constant`` reward.

Installed, it is found through the ``advx`` entry point its pyproject.toml declares, exactly
like advx's built-in plugins; a recipe then uses it with ``reward: {name: constant}``.
"""

from __future__ import annotations

from dataclasses import dataclass

import advx
import torch
from advx import BuildContext, Rewards, Rollout, StepContext

__all__ = ["ConstantReward", "ConstantRewardConfig", "advx_register_rewards", "build_constant"]


@dataclass
class ConstantRewardConfig:
    """``value``: the reward paid on the last generated token of every sequence."""

    value: float = 1.0


class ConstantReward:
    """Pays ``value`` per sequence: a baseline, and a smoke test for optimizers."""

    def __init__(self, config: ConstantRewardConfig) -> None:
        self.value = config.value

    def __call__(self, rollout: Rollout, ctx: StepContext) -> Rewards:
        paid = torch.full((rollout.batch_size,), self.value)
        return Rewards.at_end(paid, rollout, constant=paid)


def build_constant(config: ConstantRewardConfig, ctx: BuildContext) -> ConstantReward:
    return ConstantReward(config)


@advx.hookimpl
def advx_register_rewards(register: advx.hookspecs.Register) -> None:
    register("constant", build_constant, ConstantRewardConfig)

"""advx plugin: reward functions as plain Python (reward ``function``).

A recipe names any function with TRL's reward-function signature::

    reward: {name: function, path: mypkg.rewards:brevity}

    # mypkg/rewards.py
    def brevity(prompts, completions, **kwargs):
        return [1.0 / (1 + len(c.split())) for c in completions]

See :mod:`advx_pyreward.reward` and docs/rewards.md.
"""

from __future__ import annotations

import advx

from advx_pyreward.reward import (
    FunctionReward,
    FunctionRewardConfig,
    FunctionSpec,
    build_function_reward,
    load_function,
)

__all__ = [
    "FunctionReward",
    "FunctionRewardConfig",
    "FunctionSpec",
    "build_function_reward",
    "load_function",
]


@advx.hookimpl
def advx_register_rewards(register) -> None:
    register("function", build_function_reward, FunctionRewardConfig)

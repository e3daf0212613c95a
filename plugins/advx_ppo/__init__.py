"""advx built-in plugin: the ``ppo`` optimizer (clipped PPO with GAE, for any generator)."""

from __future__ import annotations

import advx
from advx.hookspecs import Register

from advx_ppo.ppo import PPO, PPOConfig, build_ppo, gae, policy_loss, value_loss, whiten

__all__ = [
    "PPO",
    "PPOConfig",
    "advx_register_optimizers",
    "build_ppo",
    "gae",
    "policy_loss",
    "value_loss",
    "whiten",
]


@advx.hookimpl
def advx_register_optimizers(register: Register) -> None:
    register("ppo", build_ppo, PPOConfig)

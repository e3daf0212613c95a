"""advx plugin ``grpo``: optimizers ``grpo`` (group-relative policy optimization) and
``adagrpo`` (NLL-anchored, per-sample gated GRPO)."""

from __future__ import annotations

import advx

from advx_grpo.adagrpo import AdaGRPOConfig, AdaGRPOOptimizer, build_adagrpo
from advx_grpo.grpo import GRPOConfig, GRPOOptimizer, build_grpo

__all__ = [
    "AdaGRPOConfig",
    "AdaGRPOOptimizer",
    "GRPOConfig",
    "GRPOOptimizer",
    "build_adagrpo",
    "build_grpo",
]


@advx.hookimpl
def advx_register_optimizers(register: advx.hookspecs.Register) -> None:
    register("grpo", build_grpo, GRPOConfig)
    register("adagrpo", build_adagrpo, AdaGRPOConfig)

"""advx built-in plugin: the ``cls_loss`` structured reward of the cold-start query paper."""

from __future__ import annotations

import advx
from advx.hookspecs import Register

from advx_cls_loss.reward import ClsLossConfig, ClsLossReward, GenTerm, build_cls_loss

__all__ = ["ClsLossConfig", "ClsLossReward", "GenTerm", "advx_register_rewards", "build_cls_loss"]


@advx.hookimpl
def advx_register_rewards(register: Register) -> None:
    register("cls_loss", build_cls_loss, ClsLossConfig)

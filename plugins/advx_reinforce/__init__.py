"""advx built-in plugin: the ``reinforce`` optimizer (REINFORCE with a baseline: none, moving
average, batch mean or leave-one-out; entropy bonus; SeqGAN-style teacher forcing)."""

from __future__ import annotations

import advx

from advx_reinforce.reinforce import ReinforceConfig, build_reinforce


@advx.hookimpl
def advx_register_optimizers(register: advx.hookspecs.Register) -> None:
    register("reinforce", build_reinforce, ReinforceConfig)

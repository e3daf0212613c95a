"""advx plugin ``causal``: a decoder-only policy (any ``AutoModelForCausalLM``)."""

from __future__ import annotations

import advx

from advx_causal.generator import CausalConfig, CausalGenerator, build_causal

__all__ = ["CausalConfig", "CausalGenerator", "build_causal"]


@advx.hookimpl
def advx_register_generators(register: advx.hookspecs.Register) -> None:
    register("causal", build_causal, CausalConfig)

"""Building a recipe's components through the registry's factories.

Order: task → generator → classifier → reward → optimizer → loggers. Each factory gets its
typed config and a :class:`BuildContext` that holds the components built before it, so a
generator can train its tokenizer on ``ctx.task.texts()`` and an optimizer can step
``ctx.generator.parameters()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from advx.components import BuildContext, Components
from advx.errors import ConfigError
from advx.recipe import COMPONENT_KINDS, ComponentBlock, Recipe

__all__ = ["build_components", "resolve_device"]


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``; an unavailable CUDA is a ConfigError."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {device!r} asked for, but CUDA is not available here; "
                          "use device=cpu or device=auto")
    return device


def _build(block: ComponentBlock, ctx: BuildContext) -> Any:
    component = block.spec.factory(block.config, ctx)
    if component is None:
        raise ConfigError(
            f"the factory of {block.kind} {block.spec.name!r} (plugin {block.spec.plugin!r}) "
            "returned None"
        )
    return component


def build_components(recipe: Recipe, run_dir: Path) -> tuple[Components, BuildContext]:
    """Build every present block of ``recipe`` in contract order; absent blocks stay None."""
    ctx = BuildContext(run_dir=run_dir, seed=recipe.seed, device=resolve_device(recipe.device))
    built: dict[str, Any] = {}
    for kind in COMPONENT_KINDS:
        block = recipe.components.get(kind)
        built[kind] = None if block is None else _build(block, ctx)
        if kind in ("task", "generator", "classifier"):
            setattr(ctx, kind, built[kind])
        else:  # BuildContext has no field for these; loggers may still want them
            ctx.extras[kind] = built[kind]
    loggers = [_build(block, ctx) for block in recipe.loggers]
    components = Components(
        task=built["task"],
        generator=built["generator"],
        classifier=built["classifier"],
        reward=built["reward"],
        optimizer=built["optimizer"],
        loggers=loggers,
    )
    return components, ctx

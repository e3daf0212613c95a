"""The search space: checking it against the recipe before any trial, and sampling it.

Key names and values are checked by the recipe validator (:func:`advx.recipe.validate_recipe`)
— the one place that knows every config class — by validating the recipe with each bound (or
each choice) written in. A range a component enforces only when it is built (``reward.alpha``
in [0, 1] for ``cls_loss``) is caught by building that component alone with the bound value,
for the kinds that are cheap to build on their own (see :data:`PROBE_BUILD_KINDS`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from omegaconf import DictConfig, OmegaConf

from advx.errors import AdvxError, ConfigError, UnknownKeyError
from advx.sweep.spec import ParamSpec, file_label, override

if TYPE_CHECKING:
    from advx.plugins import Registry
    from advx.recipe import Recipe
    from advx.sweep.spec import SweepSpec

__all__ = ["PROBE_BUILD_KINDS", "check_space", "probe_values", "suggest_overrides"]

PROBE_BUILD_KINDS = ("reward", "optimizer", "logger")
"""Component kinds built alone, with each bound, before the first trial: their factories check
their own config first and load nothing large. Tasks, generators and classifiers (data and
models) are not built ahead; their ranges belong in their config class's ``__post_init__``,
which the recipe validator runs."""


def suggest_overrides(trial: optuna.Trial, space: Mapping[str, ParamSpec]) -> list[str]:
    """Ask ``trial`` for a value of every key; return them as recipe overrides."""
    overrides = []
    for key, p in space.items():
        if p.type == "float":
            value: Any = trial.suggest_float(key, p.low, p.high, log=p.log, step=p.step)
        elif p.type == "int":
            step = int(p.step) if p.step else 1
            value = trial.suggest_int(key, int(p.low), int(p.high), log=p.log, step=step)
        else:
            value = trial.suggest_categorical(key, p.choices)
        overrides.append(override(key, value))
    return overrides


def probe_values(param: ParamSpec) -> list[Any]:
    """Values that must all be valid in the recipe: both bounds, or every choice."""
    if param.type == "categorical":
        return list(param.choices or [])
    if param.type == "int":
        return [int(param.low), int(param.high)]
    return [float(param.low), float(param.high)]


def check_space(spec: SweepSpec, registry: Registry | None = None) -> DictConfig:
    """Check the recipe, every space key and every bound, before any trial.

    Returns the base recipe (fixed overrides applied, interpolations kept).
    """
    from advx.plugins import get_registry
    from advx.recipe import COMPONENT_KINDS, load_recipe, validate_recipe

    registry = registry if registry is not None else get_registry()
    here = file_label(spec.source) if spec.source else f"sweep {spec.name!r}"
    try:
        base = load_recipe(spec.recipe, spec.overrides)
        base_recipe = validate_recipe(base, registry)
    except AdvxError as exc:
        raise type(exc)(f"{here}: recipe {spec.recipe} with overrides {spec.overrides}: {exc}") \
            from exc
    for key, param in spec.space.items():
        top = key.partition(".")[0]
        if top in COMPONENT_KINDS and "." in key and OmegaConf.select(base, f"{top}.name") is None:
            raise ConfigError(f"{here}: space.{key}: the recipe has no {top}: block with a "
                              f"name, so {key!r} configures nothing.")
        # Only a component that builds alone with the recipe's own values can tell a bad bound
        # from its need for the components built before it (absent in the probe).
        probe = _probe_build(base_recipe, key) == ""
        for value in probe_values(param):
            try:
                recipe = validate_recipe(load_recipe(base, [override(key, value)]), registry)
            except UnknownKeyError as exc:
                raise ConfigError(f"{here}: space.{key}: {exc}") from exc
            except AdvxError as exc:
                raise ConfigError(f"{here}: space.{key}: the value {value!r} is not valid in "
                                  f"the recipe: {exc}") from exc
            problem = _probe_build(recipe, key) if probe else None
            if problem:
                raise ConfigError(f"{here}: space.{key}: the value {value!r} is outside what "
                                  f"the component accepts: {problem}")
    return base

def _probe_build(recipe: Recipe, key: str) -> str | None:
    """Build the component that owns ``key`` alone, as :data:`PROBE_BUILD_KINDS` allow.

    Returns ``""`` when it built, the message of the AdvxError its factory raised, or None
    when there is nothing to probe or the factory failed otherwise (it needs what is not
    built here: the first trial will tell).
    """
    from advx.components import BuildContext

    top, _, rest = key.partition(".")
    if top == "loggers":
        index = rest.partition(".")[0]
        block = recipe.loggers[int(index)] if index.isdigit() and int(index) < len(
            recipe.loggers) else None
    else:
        block = recipe.components.get(top)
    if block is None or block.kind not in PROBE_BUILD_KINDS:
        return None
    with tempfile.TemporaryDirectory(prefix="advx-probe-") as folder:
        ctx = BuildContext(run_dir=Path(folder), seed=recipe.seed, device="cpu")
        try:
            block.spec.factory(block.config, ctx)
        except AdvxError as exc:
            return str(exc)
        except Exception:  # needs what is not built here; the first trial will tell
            return None
    return ""

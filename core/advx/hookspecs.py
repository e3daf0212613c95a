"""The whole plugin contract of advx.

Registration hooks are called once, when the plugin manager loads; each receives a
``register(name, factory, config_class)`` callable:

* ``name``: what a recipe writes under ``name:`` (unique across all plugins).
* ``factory(config, ctx) -> component``: ``config`` is an instance of ``config_class``
  filled from the recipe block, ``ctx`` an :class:`advx.components.BuildContext`.
* ``config_class``: a dataclass; omegaconf validates the recipe block against it, so an
  unknown key or a wrong type is reported with its dotted path.

What a factory returns is checked against its kind's protocol in :mod:`advx.components`
(``PluginError`` naming the missing methods); a factory that needs more of another component
(a capability such as ``SupportsCompletion``) declares it with ``advx.components.require``.

Lifecycle hooks are called during a run, for loggers and callbacks. An exception raised
in one stops the run (this is how a sweep prunes a trial).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from advx.run_info import RunInfo

__all__ = [
    "Register",
    "advx_on_round_end",
    "advx_on_run_end",
    "advx_on_run_start",
    "advx_on_step_end",
    "advx_register_classifiers",
    "advx_register_generators",
    "advx_register_loggers",
    "advx_register_optimizers",
    "advx_register_rewards",
    "advx_register_tasks",
    "hookimpl",
    "hookspec",
]

PROJECT = "advx"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[str, Callable[..., Any], type], None]
"""``register(name, factory, config_class)``; see the module docstring."""


@hookspec
def advx_register_generators(register: Register) -> None:
    """Register generators (policies): objects satisfying ``advx.components.Generator``."""


@hookspec
def advx_register_classifiers(register: Register) -> None:
    """Register classifiers (relevance classifier, discriminator, ranker): ``Classifier``."""


@hookspec
def advx_register_rewards(register: Register) -> None:
    """Register rewards: callables ``(rollout, ctx) -> Rewards`` satisfying ``Reward``."""


@hookspec
def advx_register_optimizers(register: Register) -> None:
    """Register optimizers (PPO, REINFORCE, GRPO, ...): objects satisfying ``Optimizer``."""


@hookspec
def advx_register_tasks(register: Register) -> None:
    """Register tasks (datasets, splits, prompts, metrics): objects satisfying ``Task``."""


@hookspec
def advx_register_loggers(register: Register) -> None:
    """Register metric loggers a recipe can enable under ``loggers:``: ``Logger``."""


@hookspec
def advx_on_run_start(run: RunInfo) -> None:
    """Called once the components are built, before pre-training (or on resume)."""


@hookspec
def advx_on_step_end(run: RunInfo, round: int, step: int, metrics: Mapping[str, float]) -> None:
    """Called after every improvement step with that step's record (reward terms included),
    the same record metrics.jsonl and every logger receive."""


@hookspec
def advx_on_round_end(run: RunInfo, round: int, metrics: Mapping[str, float]) -> None:
    """Called after every round's evaluation with the round's record (round 0 is pre-training),
    the same record metrics.jsonl and every logger receive; its checkpoint follows."""


@hookspec
def advx_on_run_end(run: RunInfo, summary: Mapping[str, Any]) -> None:
    """Called once with the run's summary (final and best metrics) after the last round."""

"""Building a recipe's components through the registry's factories.

Order: task → generator → classifier → reward → optimizer → loggers. Each factory gets its
typed config and a :class:`BuildContext` that holds the components built before it, so a
generator can train its tokenizer on ``ctx.task.texts()`` and an optimizer can step
``ctx.generator.parameters()``. Every built component is checked against its kind's protocol
(:data:`advx.components.BASE_PROTOCOLS`); consumers check the capabilities they need in their
own factories (:func:`advx.components.require`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from advx.accel import make_accelerator, parse_precision, prepare_component
from advx.components import (
    BASE_PROTOCOLS,
    BuildContext,
    Components,
    RequestsLabels,
    SupportsAugmentation,
    missing_members,
    require,
)
from advx.distributed import (
    broadcast_object,
    init,
    is_distributed,
    is_main_process,
    private_dir,
)
from advx.errors import ConfigError, PluginError
from advx.loop import plan_phases
from advx.plugins import Registry
from advx.recipe import COMPONENT_KINDS, ComponentBlock, Recipe

__all__ = [
    "build_block",
    "build_components",
    "check_component",
    "check_task",
    "resolve_device",
    "running_phases",
]

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``; anything but ``auto``, ``cpu``,
    ``cuda``, ``cuda:N`` or ``mps``, or an accelerator absent here, is a ConfigError."""
    if not _DEVICE.fullmatch(device):
        raise ConfigError(f"device: expected auto, cpu, cuda, cuda:N or mps, got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {device!r} asked for, but CUDA is not available here; "
                              "use device=cpu or device=auto")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device: {device!r} asked for, but this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s) (cuda:0 ...)")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device: 'mps' asked for, but MPS is not available here; "
                          "use device=cpu or device=auto")
    return device


def check_component(block: ComponentBlock, component: Any) -> None:
    """PluginError unless ``component`` satisfies its kind's base protocol. A task is checked
    per phase instead (:func:`check_task`): the loop calls its methods only in the phases the
    recipe runs."""
    where = f"{block.kind} {block.spec.name!r} (plugin {block.spec.plugin!r})"
    if component is None:
        raise PluginError(f"the factory of {where} returned None")
    if block.kind == "task":
        return
    protocol = BASE_PROTOCOLS[block.kind]
    missing = missing_members(component, protocol)
    if missing:
        methods = ", ".join(f"{m}()" if m != "__call__" else "__call__(rollout, ctx)"
                            for m in missing)
        raise PluginError(
            f"{where} built a {type(component).__name__} that lacks {methods}, which the "
            f"{protocol.__name__} protocol requires of every {block.kind} "
            "(see docs/writing-plugins.md#the-component-protocols)"
        )


_TASK_NEEDS: dict[str, tuple[str, ...]] = {
    "pretrain_generator": ("generator_train",),
    "pretrain_classifier": ("classifier_train",),
    "augment": ("augment_prompts", "synthetic_samples"),  # the SupportsAugmentation capability
    "classify": ("classifier_train",),
    "improve": ("rl_prompts",),
    "use_reference": (),
    "evaluate": ("evaluate",),
}
"""The task methods each loop phase calls."""


def running_phases(recipe: Recipe) -> list[str]:
    """The loop phases ``recipe`` will run: the loop's own plan (:func:`advx.loop.plan_phases`)
    over the blocks the recipe has, so a task is checked against exactly what will call it."""
    phases, _ = plan_phases(recipe.loop, {"task", *recipe.components})
    return [name for name, on in dataclasses.asdict(phases).items() if on]


def check_task(task: Any, phases: list[str], role: str, augment_candidates: int = 1) -> None:
    """PluginError naming the task methods the running ``phases`` call but ``task`` lacks
    (with ``augment_candidates`` > 1, the augment phase also needs ``RequestsLabels``)."""
    missing: dict[str, list[str]] = {}
    for phase in phases:
        for method in _TASK_NEEDS[phase]:
            if not callable(getattr(task, method, None)):
                missing.setdefault(method, []).append(phase)
    if "augment_prompts" in missing or "synthetic_samples" in missing:
        require(task, SupportsAugmentation, role=role,
                needed_by="the loop's augment phase (loop.augment: true; set "
                          "loop.augment=false if the task cannot make classifier data)")
    if augment_candidates > 1 and "augment" in phases:
        require(task, RequestsLabels, role=role,
                needed_by="loop.augment_candidates > 1 (set loop.augment_candidates=1 for a "
                          "task whose prompts do not request a label)")
    if missing:
        lacks = "; ".join(f"{method}() (the {', '.join(used)} phase)"
                          for method, used in missing.items())
        raise PluginError(
            f"{role} ({type(task).__name__}) lacks {lacks}, which the loop calls in the phases "
            "this recipe runs (Task protocol, see "
            "docs/writing-plugins.md#the-component-protocols). "
            "Implement them, or switch those phases off under loop:"
        )


def _build(block: ComponentBlock, ctx: BuildContext) -> Any:
    component = block.spec.factory(block.config, ctx)
    check_component(block, component)
    return component


def build_block(ctx: BuildContext, kind: str, block: Mapping[str, Any] | ComponentBlock,
                *, path: str | None = None) -> Any:
    """Validate ``block`` against ``ctx.registry`` (as a recipe block at ``path``), build it
    with ``ctx`` and check its protocol. What :meth:`BuildContext.build` calls."""
    if not isinstance(block, ComponentBlock):
        from advx.recipe import _component  # the one place recipe blocks are validated

        if ctx.registry is None:  # built outside build_components: the installed plugins
            from advx.plugins import get_registry

            ctx.registry = get_registry()
        block = _component(dict(block), kind, path or kind, ctx.registry)
    return _build(block, ctx)


def build_components(
    recipe: Recipe, run_dir: Path, registry: Registry | None = None, quiet: bool = False
) -> tuple[Components, BuildContext]:
    """Build every present block of ``recipe`` in contract order; absent blocks stay None.

    ``registry``: the one the recipe was validated against; wrapping components build their
    inner component from it through ``ctx.build`` (default: the installed plugins').

    In a data-parallel run (:mod:`advx.distributed`) the main process builds first, in the run
    folder (tiny models and tokenizers are written there; ``transformers`` saves on rank 0
    only); then every other rank builds from a private copy of what it wrote, so all ranks
    load the same files and none writes into the run folder.
    """
    if not is_distributed():
        return _build_components(recipe, run_dir, registry, quiet)
    init()
    if is_main_process():
        try:
            built = _build_components(recipe, run_dir, registry, quiet)
        except BaseException as exc:
            broadcast_object(f"{type(exc).__name__}: {exc}")
            raise
        broadcast_object(None)
        return built
    failed = broadcast_object(None)
    if failed is not None:
        raise PluginError(f"the main process could not build the components: {failed}")
    private = private_dir(run_dir)
    shutil.copytree(run_dir, private, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
        "checkpoints", "samples", "metrics.jsonl", "summary.json"))
    return _build_components(recipe, private, registry, quiet)


def _build_components(
    recipe: Recipe, run_dir: Path, registry: Registry | None, quiet: bool
) -> tuple[Components, BuildContext]:
    device = resolve_device(recipe.device)
    if is_distributed() and device.startswith("cuda"):  # one process per device
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    precision = parse_precision(recipe.precision)
    ctx = BuildContext(run_dir=run_dir, seed=recipe.seed, device=device,
                       registry=registry, loop=recipe.loop, precision=precision.value,
                       accelerator=make_accelerator(precision, device), quiet=quiet)
    built: dict[str, Any] = {}
    for kind in COMPONENT_KINDS:
        block = recipe.components.get(kind)
        if block is not None:
            ctx.names[kind] = block.spec.name
        built[kind] = None if block is None else _build(block, ctx)
        if kind in ("generator", "classifier"):  # mixed precision: autocast their forwards
            prepare_component(ctx.accelerator, built[kind])
        if kind in ("task", "generator", "classifier"):
            setattr(ctx, kind, built[kind])
        else:  # BuildContext has no field for these; loggers may still want them
            ctx.extras[kind] = built[kind]
        if kind == "task" and built[kind] is not None:  # fail before the slow builds
            check_task(built[kind], running_phases(recipe), ctx.describe("task"),
                       augment_candidates=recipe.loop.augment_candidates)
    # loggers report what the main process writes; the other ranks have none
    loggers = [_build(block, ctx) for block in recipe.loggers] if is_main_process() else []
    components = Components(
        task=built["task"],
        generator=built["generator"],
        classifier=built["classifier"],
        reward=built["reward"],
        optimizer=built["optimizer"],
        loggers=loggers,
    )
    return components, ctx

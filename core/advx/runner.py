"""The Python API of a run: what ``advx run`` and the sweep engine call.

    from advx.runner import run_recipe
    result = run_recipe("recipes/ppo_cls_loss.yaml", ["reward.alpha=0.5"])
    result.run_dir, result.summary["best"]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy
from omegaconf import DictConfig

from advx.build import build_components
from advx.errors import ConfigError
from advx.loop import Experiment, Reporter, seed_everything
from advx.plugins import get_plugin_manager, get_registry
from advx.recipe import Recipe, load_recipe, validate_recipe
from advx.run_info import RunInfo
from advx.rundir import RunDir

__all__ = ["RunResult", "prepare_recipe", "run_plugins", "run_recipe"]


@dataclass
class RunResult:
    """Where a run wrote, and its ``summary.json`` as a dict."""

    run_dir: Path
    summary: dict[str, Any]


@contextmanager
def run_plugins(plugins: Sequence[object] = ()) -> Iterator[pluggy.PluginManager]:
    """The plugin manager with ``plugins`` registered for the duration of the block."""
    pm = get_plugin_manager()
    added = []
    try:
        for plugin in plugins:
            if not pm.is_registered(plugin):
                pm.register(plugin)
                added.append(plugin)
        yield pm
    finally:
        for plugin in added:
            pm.unregister(plugin)


def prepare_recipe(
    recipe: str | Path | DictConfig,
    overrides: Sequence[str] = (),
    pm: pluggy.PluginManager | None = None,
) -> Recipe:
    """Load, override and validate a recipe against the installed components."""
    return validate_recipe(load_recipe(recipe, overrides), get_registry(pm))


def run_recipe(
    recipe: str | Path | DictConfig | None = None,
    overrides: Sequence[str] = (),
    runs_root: Path = Path("runs"),
    run_dir: Path | None = None,
    resume: Path | None = None,
    plugins: Sequence[object] = (),
    reporter: Reporter | None = None,
) -> RunResult:
    """Run a recipe end to end, or continue the run in ``resume`` after its last checkpoint.

    Args:
        recipe: a recipe file, or a DictConfig (ignored with ``resume``).
        overrides: ``dotted.key=value`` strings applied on top (on resume: on top of the
            run's saved recipe.yaml, e.g. ``loop.rounds=8`` to extend a finished run).
        runs_root: runs go to ``runs_root/<name>/<timestamp>/``.
        run_dir: write exactly here instead (the sweep gives each trial its folder).
        resume: an existing run directory to continue.
        plugins: extra plugin objects (hookimpls) registered on the plugin manager for this
            run only, e.g. a sweep's pruning callback implementing ``advx_on_round_end``.
        reporter: a progress display (the CLI passes its rich one); default reports nothing.
    """
    with run_plugins(plugins) as pm:
        if resume is not None:
            rundir = RunDir.existing(Path(resume))
            spec = prepare_recipe(rundir.recipe_path, overrides, pm)
        else:
            if recipe is None:
                raise ConfigError("give a recipe file, or --resume RUN_DIR")
            spec = prepare_recipe(recipe, overrides, pm)
            rundir = RunDir.at(run_dir) if run_dir else RunDir.create(runs_root, spec.name)
        rundir.write_recipe(spec.resolved)
        seed_everything(spec.seed)
        components, _ = build_components(spec, rundir.path)
        info = RunInfo(name=spec.name, run_dir=rundir.path, recipe=spec.resolved, seed=spec.seed)
        experiment = Experiment(components, spec.loop, rundir, info, pm.hook, reporter)
        summary = experiment.run(resume=resume is not None)
    return RunResult(run_dir=rundir.path, summary=summary)

"""The Python API of a run: what ``advx run`` and the sweep engine call.

    from advx.runner import run_recipe
    result = run_recipe("recipes/ppo_cls_loss.yaml", ["reward.alpha=0.5"])
    result.run_dir, result.summary["best"]

    from advx.runner import open_run        # a run's checkpoint as built components
    with open_run(result.run_dir, round="best") as opened: ...
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy
import yaml
from omegaconf import DictConfig

from advx.branch import note_origin, read_start
from advx.branch import start_from as start_from_checkpoint
from advx.build import build_components
from advx.distributed import is_main_process, shared_run_dir
from advx.errors import ConfigError
from advx.loop import RESUMABLE_KEYS, Experiment, changed_keys, seed_everything
from advx.plugins import get_plugin_manager, get_registry
from advx.recipe import Recipe, load_recipe, validate_recipe
from advx.run_info import RunInfo
from advx.rundir import RunDir
from advx.use import OpenedRun, open_run

__all__ = ["OpenedRun", "RunResult", "Terminated", "open_run", "prepare_recipe", "run_plugins",
           "run_recipe", "sigterm_interrupts"]


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, cluster schedulers), raised like Ctrl-C so the run ends the same
    way: status ``interrupted`` in summary.json, the last checkpoint kept for ``--resume``."""


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only: Python
    delivers signals there; elsewhere the block runs unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise Terminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

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


def _saved_recipe(rundir: RunDir) -> Mapping[str, Any]:
    """The run's recipe.yaml as a dict; one clear message when it is not readable YAML."""
    try:
        data = yaml.safe_load(rundir.recipe_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{rundir.recipe_path} is not readable YAML "
                          f"({type(exc).__name__}); it is not a recipe this run wrote") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{rundir.recipe_path} is not a recipe (a YAML mapping)")
    return data


def _check_resume_overrides(saved: Mapping[str, Any], spec: Recipe) -> None:
    changed = changed_keys(saved, spec.resolved)
    if changed:
        key, old, new = changed[0]
        raise ConfigError(
            f"{key} cannot change on --resume ({old!r} -> {new!r}): the checkpoint was "
            f"trained with {old!r}, so the run folder would no longer describe the run. "
            f"Keys that may change on resume: {', '.join(RESUMABLE_KEYS)}. Start a new run "
            "to change it"
        )


def run_recipe(
    recipe: str | Path | DictConfig | None = None,
    overrides: Sequence[str] = (),
    runs_root: Path = Path("runs"),
    run_dir: Path | None = None,
    resume: Path | None = None,
    plugins: Sequence[object] = (),
    start_from: str | Path | None = None,
    quiet: bool = False,
) -> RunResult:
    """Run a recipe end to end, or continue the run in ``resume`` after its last checkpoint.

    Args:
        recipe: a recipe file, or a DictConfig (not with ``resume``).
        overrides: ``dotted.key=value`` strings applied on top (on resume: on top of the
            run's saved recipe.yaml, only keys in ``advx.loop.RESUMABLE_KEYS``, e.g.
            ``loop.rounds=8`` to extend a finished run).
        runs_root: runs go to ``runs_root/<name>/<timestamp>/``.
        run_dir: write exactly here instead (a new or empty folder; the sweep gives each
            trial its folder).
        resume: an existing run directory to continue.
        plugins: extra plugin objects (hookimpls) registered on the plugin manager for this
            run only: the CLI's progress display, a sweep's pruning callback.
        start_from: ``RUN_DIR[:ROUND|:best]``: a new run whose components start from that
            run's checkpoint, pre-training skipped (:mod:`advx.branch` says what carries over).
        quiet: factories show no progress bars of their own (``BuildContext.quiet``).

    Nothing is written before the recipe validated and every component built: a rejected
    recipe or override leaves a resumed run's recipe.yaml as it was, and a fresh run's
    folder is removed again.
    """
    if resume is not None and run_dir is not None:
        raise ConfigError("--run-dir and --resume exclude each other: --resume continues "
                          "the run in its own folder")
    if resume is not None and start_from is not None:
        raise ConfigError("--from and --resume exclude each other: --resume continues a run, "
                          "--from starts a new one from another run's checkpoint")
    if resume is not None and recipe is not None:
        raise ConfigError("with --resume, give no recipe: the run's own recipe.yaml is used "
                          "(key=value overrides are allowed)")
    with run_plugins(plugins) as pm, sigterm_interrupts():
        if resume is not None:
            rundir = RunDir.existing(Path(resume))
            rundir.read_only = not is_main_process()  # data-parallel: the main process writes
            saved = _saved_recipe(rundir)
            spec = prepare_recipe(rundir.recipe_path, overrides, pm)
            _check_resume_overrides(saved, spec)
            experiment = _experiment(spec, rundir, pm, quiet)
            experiment.restore()  # checks the checkpoint was trained with this recipe
        else:
            if recipe is None:
                raise ConfigError("give a recipe file, or --resume RUN_DIR")
            spec = prepare_recipe(recipe, overrides, pm)
            start = read_start(start_from) if start_from is not None else None
            rundir = shared_run_dir(  # data-parallel: made by the main process, shared
                lambda: RunDir.at(run_dir) if run_dir else RunDir.create(runs_root, spec.name))
            try:
                experiment = _experiment(spec, rundir, pm, quiet)
                origin = start_from_checkpoint(experiment, start, rundir) if start else None
                _write_recipe(rundir, spec)
                if origin is not None:
                    note_origin(rundir, origin)
            except BaseException:
                rundir.discard()
                raise
        if resume is not None:
            _write_recipe(rundir, spec)
        summary = experiment.run()
    return RunResult(run_dir=rundir.path, summary=summary)


def _write_recipe(rundir: RunDir, spec: Recipe) -> None:
    try:
        rundir.write_recipe(spec.resolved)
    except OSError as exc:  # a full disk or a read-only folder: the user's to fix
        raise ConfigError(f"cannot write {rundir.recipe_path}: {exc.strerror or exc}; free "
                          "disk space or choose a writable folder") from exc


def _experiment(spec: Recipe, rundir: RunDir, pm: pluggy.PluginManager,
                quiet: bool = False) -> Experiment:
    seed_everything(spec.seed)
    components, _ = build_components(spec, rundir.path, registry=get_registry(pm), quiet=quiet)
    info = RunInfo(name=spec.name, run_dir=rundir.path, recipe=spec.resolved, seed=spec.seed)
    return Experiment(components, spec.loop, rundir, info, pm.hook)

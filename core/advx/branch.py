"""``advx run --from RUN_DIR[:ROUND|:best] RECIPE``: a new run that starts from another
run's checkpoint (the "pretrain once, then fork" protocol) without copying folders.

What carries over (docs/architecture.md, "Starting from a checkpoint"):

* the **generator** and the **classifier** states (weights, a value head, a generator's SFT
  optimizer): always, when the recipe has that component; the component's name must be the
  checkpoint's and the shapes must fit, else one ConfigError;
* the **optimizer** and **reward** states (Adam moments, a reward's running statistics): only
  when the recipe's block is identical to the source run's (a changed learning rate must not
  be overwritten by the saved optimizer's); otherwise they start fresh;
* nothing else: the synthetic pool, the round counter and the random streams start anew (the
  new run is seeded from its own ``seed``), and the reference policy π_ref is the generator
  as loaded (the new run's round 0).

The pre-training phases (generator SFT, classifier fit, ``pretrain_d_steps``) are skipped:
round 0 of the new run evaluates and checkpoints the loaded weights. ``summary.json`` and the
checkpoints record ``from: {run_dir, round}``; recipe.yaml names it in a leading comment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from advx.errors import ConfigError
from advx.loop import Experiment, _flatten
from advx.rundir import RunDir, atomic_write_text, jsonable
from advx.use import RoundArg, existing_run, parse_round, resolve_round

__all__ = ["CARRIED_ALWAYS", "CARRIED_IF_SAME", "Start", "parse_start", "read_start",
           "start_from"]

CARRIED_ALWAYS = ("generator", "classifier")
CARRIED_IF_SAME = ("optimizer", "reward")


@dataclasses.dataclass
class Start:
    """A checkpoint to start from: the source run, its round, its parts and recipe."""

    run_dir: Path
    round: int
    parts: dict[str, Any]
    recipe: dict[str, Any]


def parse_start(text: str) -> tuple[Path, RoundArg]:
    """``RUN_DIR``, ``RUN_DIR:7`` or ``RUN_DIR:best``."""
    path, _, suffix = str(text).rpartition(":")
    if path and (suffix.isdigit() or suffix == "best"):
        return Path(path), parse_round(suffix, "--from")
    return Path(text), None


def read_start(text: str | Path) -> Start:
    """Validate and read the checkpoint ``--from`` names (ConfigError: no folder, no
    complete checkpoint, an unreadable one)."""
    import yaml

    path, round = parse_start(str(text))
    rundir = existing_run(path)
    try:
        saved = yaml.safe_load(rundir.recipe_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"--from: {rundir.recipe_path} is not readable YAML") from exc
    loop = (saved or {}).get("loop") or {}
    at = resolve_round(rundir, round, str(loop.get("monitor") or ""),
                       str(loop.get("monitor_mode") or "max"))
    try:
        parts = rundir.load_checkpoint(at)
    except Exception as exc:  # a truncated or corrupt file
        raise ConfigError(f"--from: checkpoints/round-{at} of {rundir.path} is unreadable "
                          f"({type(exc).__name__}: {exc})") from exc
    trained = (parts.get("loop") or {}).get("recipe") or saved
    return Start(run_dir=rundir.path, round=at, parts=parts, recipe=dict(trained))


def _block(recipe: Mapping[str, Any], kind: str) -> dict[str, Any]:
    return _flatten(jsonable(recipe.get(kind) or {}))


def start_from(experiment: Experiment, start: Start, rundir: RunDir) -> dict[str, Any]:
    """Load ``start``'s carried states into ``experiment``'s components, switch its
    pre-training off and record the origin; returns ``experiment.origin``."""
    c, recipe = experiment.c, experiment.info.recipe
    carried: dict[str, Any] = {}
    for kind in CARRIED_ALWAYS:
        component = getattr(c, kind)
        if component is None:
            continue
        source_name = (start.recipe.get(kind) or {}).get("name")
        name = (recipe.get(kind) or {}).get("name")
        if kind not in start.parts or source_name is None:
            raise ConfigError(f"--from {start.run_dir}: the recipe has a {kind} ({name!r}) but "
                              f"the checkpoint of round {start.round} holds none; remove the "
                              f"{kind} block or start from a run that trained one")
        if source_name != name:
            raise ConfigError(f"--from {start.run_dir}: the checkpoint's {kind} is "
                              f"{source_name!r}, the recipe's is {name!r}; a checkpoint starts "
                              "only the same component")
        carried[kind] = start.parts[kind]
    for kind in CARRIED_IF_SAME:
        if getattr(c, kind) is not None and kind in start.parts \
                and _block(start.recipe, kind) == _block(recipe, kind):
            carried[kind] = start.parts[kind]
    where = f"{start.run_dir}/checkpoints/round-{start.round}"
    experiment.load_weights(carried, start.round, source="the recipe",
                            hint=f"the recipe's {', '.join(carried)} must have the shapes of "
                                 f"the run in {start.run_dir} (same sizes, same tokenizer)")
    phases = experiment.phases
    for phase in ("pretrain_generator", "pretrain_classifier"):
        if getattr(phases, phase):
            experiment.skipped[phase] = f"started from {where}"
    if experiment.cfg.pretrain_d_steps:
        experiment.skipped["pretrain_d_steps"] = f"started from {where}"
    experiment.phases = dataclasses.replace(phases, pretrain_generator=False,
                                            pretrain_classifier=False)
    experiment.cfg = dataclasses.replace(experiment.cfg, pretrain_d_steps=0)
    experiment.origin = {"run_dir": str(start.run_dir), "round": start.round,
                         "carried": sorted(carried)}
    return experiment.origin


def note_origin(rundir: RunDir, origin: Mapping[str, Any]) -> None:
    """Prepend ``# from: ...`` to the new run's recipe.yaml (a comment: the recipe stays a
    plain recipe that ``--resume`` validates as before). Skipped on a data-parallel run's
    other ranks (``read_only``): the main process writes the file alone, and another rank would
    find it missing or add a second header."""
    if rundir.read_only:
        return
    text = rundir.recipe_path.read_text(encoding="utf-8")
    header = (f"# from: {origin['run_dir']} round {origin['round']} "
              f"(carried: {', '.join(origin['carried'])}; advx run --from)\n")
    atomic_write_text(rundir.recipe_path, header + text)

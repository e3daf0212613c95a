"""The Optuna study of a sweep: sampler, pruner, and creating or continuing the study."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from omegaconf import DictConfig, OmegaConf

from advx.errors import ConfigError, did_you_mean
from advx.sweep.spec import file_label

if TYPE_CHECKING:
    from advx.sweep.spec import SweepSpec

__all__ = ["make_pruner", "make_sampler", "metric_message", "open_study"]

_SAMPLERS = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "cmaes": "CmaEsSampler",
    "gp": "GPSampler",
    "qmc": "QMCSampler",
    "bruteforce": "BruteForceSampler",
}
_PRUNERS = {
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
    "threshold": "ThresholdPruner",
    "wilcoxon": "WilcoxonPruner",
    "none": "NopPruner",
}


def _instantiate(module: Any, table: dict[str, str], options: dict[str, Any], what: str,
                 spec: SweepSpec) -> Any:
    options = dict(options)
    name = options.pop("name")
    if name not in table:
        raise ConfigError(f"{file_label(spec.source or Path(spec.name))}: {what}.name: unknown "
                          f"{what} {name!r}; available: {', '.join(table)}")
    cls = getattr(module, table[name])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{file_label(spec.source or Path(spec.name))}: {what} {name!r} "
                          f"({cls.__name__}) rejects {options}: {exc}") from exc


def make_sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    return _instantiate(optuna.samplers, _SAMPLERS, spec.sampler, "sampler", spec)


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    return _instantiate(optuna.pruners, _PRUNERS, spec.pruner, "pruner", spec)


def open_study(spec: SweepSpec, storage: optuna.storages.BaseStorage,
               base_recipe: DictConfig | None = None) -> optuna.Study:
    """Create the study or load it (same name, same storage): a rerun continues it."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=spec.name, storage=storage, load_if_exists=True,
        direction=spec.objective.direction, sampler=make_sampler(spec), pruner=make_pruner(spec),
    )
    wanted = optuna.study.StudyDirection[spec.objective.direction.upper()]
    if study.direction != wanted:
        raise ConfigError(
            f"study {spec.name!r} already exists in this storage with direction "
            f"{study.direction.name.lower()}, but the sweep asks to {spec.objective.direction}; "
            "give the sweep another name: or use another storage"
        )
    attrs = study.user_attrs
    old = attrs.get("objective")
    if old and old.get("metric") != spec.objective.metric:
        raise ConfigError(
            f"study {spec.name!r} already optimises {old.get('metric')!r}, not "
            f"{spec.objective.metric!r}; give the sweep another name: or use another storage"
        )
    known = attrs.get("available_metrics")
    if known and spec.objective.metric not in known:
        raise ConfigError(metric_message(spec, known))
    if base_recipe is not None:
        _check_same_base(spec, attrs.get("base_recipe"), base_recipe)
        study.set_user_attr("sweep", spec.to_dict())
        study.set_user_attr("objective", dataclasses.asdict(spec.objective))
        study.set_user_attr("base_recipe", OmegaConf.to_yaml(base_recipe))
    return study


def _check_same_base(spec: SweepSpec, recorded: str | None, base_recipe: DictConfig) -> None:
    """ConfigError when the study's trials ran with another base recipe (the recipe with the
    fixed overrides, e.g. ``advx sweep FILE loop.rounds=2`` for a quick look, then without).

    Continuing would mix trials of two recipes in one study: ``n_trials`` counts the old ones
    (the full sweep might run no trial at all), the sampler learns from both, and ``best.yaml``
    would pair the best trial's values with a base it never ran with. ``description`` may
    change (it trains nothing).
    """
    if not recorded:  # a study from before the base was recorded
        return
    from advx.loop import _flatten

    def flat(config: DictConfig) -> dict[str, Any]:
        data = _flatten(OmegaConf.to_container(config, resolve=False))
        data.pop("description", None)
        return data

    old, new = flat(OmegaConf.create(recorded)), flat(base_recipe)
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if changed:
        key = changed[0]
        raise ConfigError(
            f"study {spec.name!r} ran its trials with another recipe or other fixed overrides: "
            f"{key} was {old.get(key)!r}, now {new.get(key)!r} ({len(changed)} key(s) differ). "
            "One study's trials must share them (n_trials counts every trial, and best.yaml "
            "is exported with one base). Give the sweep another name: or another --storage "
            "(e.g. a quick look with --storage sqlite:///runs/sweeps/quick.db)"
        )


def metric_message(spec: SweepSpec, available: Sequence[str]) -> str:
    hint = did_you_mean(spec.objective.metric, available)
    return (
        f"objective.metric {spec.objective.metric!r} is not produced by recipe {spec.recipe} "
        f"(summary.json {spec.objective.summary!r} block).{hint} "
        f"Available metrics: {', '.join(sorted(available)) or 'none'}."
    )



"""One trial: an ordinary advx run, its objective value, and how it fails or is pruned."""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from omegaconf import DictConfig
from optuna.trial import TrialState

from advx.errors import ConfigError
from advx.hookspecs import hookimpl
from advx.provenance import code_version
from advx.recipe import import_plugins
from advx.sweep.space import suggest_overrides
from advx.sweep.study import metric_message

if TYPE_CHECKING:
    from advx.sweep.spec import SweepSpec

__all__ = [
    "MetricNotProduced", "Objective", "RoundReporter", "TrialFailed",
    "load_recipe_for",
]


class TrialFailed(Exception):
    """A trial raised or returned NaN: recorded as FAIL (with its error) and the sweep goes on."""


class MetricNotProduced(ConfigError):
    """The objective metric is missing from a run's summary: stops the whole sweep."""


class RoundReporter:
    """In-process plugin registered into every trial's run: reports the objective metric
    after each round (``trial.report``) and raises ``optuna.TrialPruned`` when the pruner
    says so (lifecycle-hook exceptions stop the run, see :mod:`advx.hookspecs`)."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial = trial
        self.metric = metric

    @hookimpl
    def advx_on_round_end(self, run: Any, round: int, metrics: Mapping[str, float]) -> None:
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(float(value)):
            return
        self.trial.report(float(value), step=round)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after round {round}: {self.metric}={value:.4g}")


def _summary_metrics(summary: Mapping[str, Any], block: str) -> dict[str, Any]:
    """The numbers of ``summary.json``'s ``final`` or ``best`` block (a round's record),
    without the loop's bookkeeping keys."""
    chosen = summary.get(block) or {}
    return {
        k: v for k, v in chosen.items()
        if k not in _BOOKKEEPING and not isinstance(v, bool)
        and (v is None or isinstance(v, (int, float)))
    }


_BOOKKEEPING = {"kind", "round", "global_step", "evaluated"}


def _cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """``exc`` or the first exception of type ``kind`` in its cause/context chain."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


class Objective:
    """``study.optimize``'s objective: one ordinary advx run per trial."""

    def __init__(self, spec: SweepSpec, runs_root: Path, plugins: Sequence[Any] = ()) -> None:
        self.spec = spec
        self.runs_root = Path(runs_root)
        self.plugins = [*import_plugins(spec.plugins), *plugins]
        self.code = code_version(spec.recipe.parent)

    def _run_dir(self, trial: optuna.Trial) -> Path:
        folder = self.runs_root / "sweeps" / self.spec.name
        path = folder / f"trial-{trial.number:04d}"
        if path.exists():  # the study was recreated but old run folders remain
            path = folder / f"trial-{trial.number:04d}-{int(time.time())}"
        return path.resolve()

    def __call__(self, trial: optuna.Trial) -> float:
        from advx.runner import run_recipe

        overrides = suggest_overrides(trial, self.spec.space)
        run_dir = self._run_dir(trial)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("overrides", overrides)
        trial.set_user_attr("code", self.code)
        reporter = RoundReporter(trial, self.spec.objective.metric)
        try:
            result = run_recipe(
                load_recipe_for(self.spec, overrides), run_dir=run_dir,
                runs_root=self.runs_root, plugins=[reporter, *self.plugins],
            )
        except BaseException as exc:
            pruned = _cause(exc, optuna.TrialPruned)
            if pruned is not None:
                raise pruned from None
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            message = f"{type(exc).__name__}: {exc}".strip()
            trial.set_user_attr("error", message[:2000])
            raise TrialFailed(message) from exc
        return self._value(trial, result.summary)

    def _value(self, trial: optuna.Trial, summary: Mapping[str, Any]) -> float:
        metrics = _summary_metrics(summary, self.spec.objective.summary)
        trial.set_user_attr("metrics", {  # JSON in the storage: NaN/inf become null
            k: (v if v is not None and math.isfinite(v) else None) for k, v in metrics.items()})
        study = trial.study
        if not study.user_attrs.get("available_metrics") and metrics:
            # Remembered so that a later sweep naming a wrong metric fails before any trial.
            study.set_user_attr("available_metrics", sorted(metrics))
        metric = self.spec.objective.metric
        if metric not in metrics:
            message = metric_message(self.spec, list(metrics))
            trial.set_user_attr("error", message)
            if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
                raise MetricNotProduced(message)  # never seen: stop the sweep, not just a trial
            raise TrialFailed(message)
        value = metrics[metric]
        if value is None or not math.isfinite(float(value)):
            message = f"objective {metric} is {value!r} (NaN or inf in summary.json: diverged?)"
            trial.set_user_attr("error", message)
            raise TrialFailed(message)
        return float(value)


def load_recipe_for(spec: SweepSpec, overrides: Sequence[str]) -> DictConfig:
    """The trial's recipe: the sweep's recipe + fixed overrides + the trial's values."""
    from advx.recipe import load_recipe

    return load_recipe(spec.recipe, [*spec.overrides, *overrides])



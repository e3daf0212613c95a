"""``advx sweep``: Optuna studies over any dotted recipe keys.

A sweep file names a recipe, fixed overrides, a search space, the objective and the Optuna
machinery (sampler, pruner, storage); see ``docs/sweeps.md`` for every key. The package is
split by concern:

=====================  ==========================================================
:mod:`.spec`           the sweep file: parsing and checking it (``load_sweep``)
:mod:`.space`          the search space: checked against the recipe before any trial
:mod:`.storage`        storage URLs and drivers (SQLite default, PostgreSQL)
:mod:`.study`          sampler, pruner, creating or continuing the Optuna study
:mod:`.objective`      one trial: an ordinary advx run and its objective value
:mod:`.workers`        worker processes and ``run_sweep``
:mod:`.report`         ``advx sweep show``: table, plots, best recipe
=====================  ==========================================================

The ``advx sweep`` commands live with the other commands in :mod:`advx.cli`.
"""

from __future__ import annotations

from advx.sweep.objective import MetricNotProduced, Objective, RoundReporter, TrialFailed
from advx.sweep.space import check_space, suggest_overrides
from advx.sweep.spec import ObjectiveSpec, ParamSpec, SweepSpec, load_sweep
from advx.sweep.storage import (
    default_storage_url,
    make_storage,
    resolve_storage_url,
    safe_url,
    sqlite_path,
)
from advx.sweep.study import open_study
from advx.sweep.workers import SweepFailed, SweepResult, check_not_all_failed, run_sweep

__all__ = [
    "MetricNotProduced",
    "Objective",
    "ObjectiveSpec",
    "ParamSpec",
    "RoundReporter",
    "SweepFailed",
    "SweepResult",
    "SweepSpec",
    "TrialFailed",
    "check_not_all_failed",
    "check_space",
    "default_storage_url",
    "load_sweep",
    "make_storage",
    "open_study",
    "resolve_storage_url",
    "run_sweep",
    "safe_url",
    "sqlite_path",
    "suggest_overrides",
]

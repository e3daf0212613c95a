"""Worker processes: each runs ``study.optimize`` against the shared storage.

Parallelism is Optuna's own: every worker, on this machine (``--workers N``, spawned
processes) or on others (the same command pointed at one PostgreSQL storage), starts trials
while the study holds fewer than ``n_trials``.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.text import Text

from advx.errors import AdvxError, ConfigError, print_error
from advx.recipe import import_plugins
from advx.sweep.objective import Objective, TrialFailed
from advx.sweep.space import check_space
from advx.sweep.spec import SweepSpec
from advx.sweep.storage import make_storage, resolve_storage_url, safe_url
from advx.sweep.study import open_study

__all__ = [
    "FINISHED", "SweepFailed", "SweepResult", "check_not_all_failed", "run_sweep", "work",
]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

console = Console(stderr=True, soft_wrap=True, highlight=False)


class SweepFailed(AdvxError):
    """Every trial of the study failed: the sweep produced nothing to compare."""



def _count_started(study: optuna.Study) -> int:
    states = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)
    return len(study.get_trials(deepcopy=False, states=states))


def _log_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in trial.params.items())
    value = f"{trial.value:.4g}" if trial.value is not None else "-"
    extra = trial.user_attrs.get("error", "") if trial.state == TrialState.FAIL else ""
    line = Text(f"trial {trial.number}", style="bold")  # user text stays literal, no markup
    line.append(f" {trial.state.name.lower()} value={value} {params} {extra}".rstrip())
    console.print(line)


def _worker_spec(spec: SweepSpec, index: int, busy: bool) -> SweepSpec:
    """The spec a worker samples with: workers must not share a sampler seed, or they
    propose the same points. Local worker k uses ``seed + k``; a worker that finds another
    one already running (a second machine) draws a fresh seed and says so."""
    seed = spec.sampler.get("seed")
    if seed is None or (index == 0 and not busy):
        return spec
    if busy and index == 0:
        new_seed = int.from_bytes(os.urandom(4), "little")
        console.print(f"another worker is running trials of {spec.name!r}: this one samples "
                      f"with seed {new_seed}, not {seed}, so the two do not repeat each other",
                      markup=False)
    else:
        new_seed = int(seed) + index
    return dataclasses.replace(spec, sampler={**spec.sampler, "seed": new_seed})


def work(spec: SweepSpec, storage_url: str, n_trials: int, runs_root: Path,
         plugins: Sequence[Any] = (), index: int = 0) -> int:
    """One worker: start trials until the study holds ``n_trials``; returns trials run here.

    ``index``: this worker's number among the ``--workers`` of one invocation.
    """
    storage = make_storage(storage_url)
    busy = bool(optuna.load_study(study_name=spec.name, storage=storage).get_trials(
        deepcopy=False, states=(TrialState.RUNNING,)))
    spec = _worker_spec(spec, index, busy)
    study = open_study(spec, storage)
    objective = Objective(spec, runs_root, plugins)
    ran = 0
    while True:
        with _quiet_optuna():
            optuna.storages.fail_stale_trials(study)
            if _count_started(study) >= n_trials:
                return ran
            study.optimize(objective, n_trials=1, catch=(TrialFailed,), callbacks=[_log_trial])
        ran += 1


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's own reports off while trials run: a failed trial is one line of
    :func:`_log_trial` (Optuna would log it again, with a traceback), and an error that stops
    the sweep is printed once, by the CLI. Heartbeats and stale-trial failing are marked
    experimental, but they are what keeps a killed worker's trial from staying RUNNING."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def _worker_entry(spec_dict: dict[str, Any], storage_url: str, n_trials: int,
                  runs_root: str, index: int) -> None:
    """Entry of a spawned worker process (``--workers N``)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        work(SweepSpec.from_dict(spec_dict), storage_url, n_trials, Path(runs_root), index=index)
    except AdvxError as exc:
        print_error(exc)
        sys.exit(exc.exit_code)


@dataclass
class SweepResult:
    """What a sweep invocation did: the study's name and storage, and its trials."""

    name: str
    storage: str
    trials: list[FrozenTrial]
    best: FrozenTrial | None


def run_sweep(
    spec: SweepSpec,
    storage: str | None = None,
    n_trials: int | None = None,
    workers: int = 1,
    runs_root: Path = Path("runs"),
    plugins: Sequence[Any] = (),
    registry: Any | None = None,
) -> SweepResult:
    """Check everything, open the study, then run ``workers`` worker processes (or, for one
    worker, run in this process) until the study holds ``n_trials`` trials.

    ``plugins``: extra in-process plugin objects for every trial (this process only; spawned
    workers load the sweep file's ``plugins:`` modules instead).
    """
    if workers < 1:
        raise ConfigError(f"--workers: expected a positive integer, got {workers}")
    n_trials = n_trials if n_trials is not None else spec.n_trials
    if n_trials < 1:
        raise ConfigError(f"--n-trials: expected a positive integer, got {n_trials}")
    url = resolve_storage_url(storage or spec.storage, spec.name, runs_root)
    if registry is None:
        from advx.plugins import get_registry
        from advx.runner import run_plugins

        # The registry as a trial sees it: installed plugins plus the sweep's extra ones.
        with run_plugins([*import_plugins(spec.plugins), *plugins]) as pm:
            registry = get_registry(pm)
    base = check_space(spec, registry)
    study = open_study(spec, make_storage(url), base_recipe=base)
    done = _count_started(study)
    console.print(f"sweep {spec.name}: {done} trial(s) in {safe_url(url)}, "
                  f"target {n_trials}, {workers} worker(s)", markup=False)
    if workers == 1:
        work(spec, url, n_trials, runs_root, plugins)
    else:
        spawn_workers(_worker_entry, [(spec.to_dict(), url, n_trials, str(runs_root), i)
                                      for i in range(workers)], "sweep")
    study = optuna.load_study(study_name=spec.name, storage=make_storage(url))
    trials = study.get_trials(deepcopy=False)
    best = _best_trial(study)
    return SweepResult(spec.name, url, trials, best)


def spawn_workers(target: Callable[..., None], args: Sequence[tuple[Any, ...]],
                  what: str) -> None:
    """Start one spawned process per ``args`` tuple running ``target(*args)``, wait for all;
    a ConfigError when any exits non-zero (each has printed its own message).

    Spawned, not forked: a fork would copy torch's thread pools and open storage connections.
    """
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, name=f"advx-{what}-{i}", args=a)
             for i, a in enumerate(args)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        raise ConfigError(f"{len(failed)} of {len(procs)} {what} workers stopped with an error "
                          f"(exit codes {failed}); see their messages above")


def check_not_all_failed(result: SweepResult) -> None:
    """A SweepFailed when the study has trials and every finished one failed (the CLI's exit
    status: such a sweep found nothing)."""
    trials = result.trials
    finished = [t for t in trials if t.state in FINISHED]
    if not finished or any(t.state != TrialState.FAIL for t in finished):
        return
    first = finished[0].user_attrs.get("error", "no error recorded")
    raise SweepFailed(
        f"sweep {result.name!r}: all {len(finished)} trial(s) failed; the first with: {first}. "
        f"`advx sweep show {result.name}` lists every trial's error and run folder."
    )


def _best_trial(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None

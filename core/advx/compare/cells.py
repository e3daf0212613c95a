"""Running a comparison: every (condition, seed) cell is one trial of an Optuna study.

The study (named after the compare file) lives in the same kind of storage as sweeps: an
embedded SQLite file next to the compare's runs by default, or one PostgreSQL database that
workers on many machines point at. The storage only *records* cells; every cell is an
ordinary run folder ``<runs-dir>/<condition>/seed-<S>/`` written by
:func:`advx.runner.run_recipe`.

A cell's life, as trial states::

    enqueued (WAITING) --claimed by one worker--> RUNNING --> COMPLETE   (done)
                                                          \\-> FAIL + error  (failed: rerun
                                                                            with --retry-failed)
                                                          \\-> FAIL, no error (interrupted:
                                                                 Ctrl-C, killed, lost heartbeat;
                                                                 rerun by the next invocation)

Exactly once. A worker claims a WAITING trial with one conditional ``UPDATE ... WHERE state =
'WAITING'`` and owns it only if that statement changed a row. (Optuna's own
``Study.ask()`` reads the state and writes it in two statements; on SQLite, where
``SELECT ... FOR UPDATE`` does not exist, two processes can both pop the same trial:
optuna/optuna#4002, #4621.) Two workers starting together may both enqueue a cell; a worker
that claims a trial of a cell that already has a COMPLETE trial, or a RUNNING one with a
lower number, marks its own PRUNED (``superseded``) instead of running it. Workers claim in
trial-number order, so the lower-numbered trial of a cell is always claimed first. A worker
claims only the cells its own compare file names: one still running the file as it was before
a condition was added leaves the added condition's cells waiting for the workers that know it.

Shared start (``shared_start:``). Each seed gets one more cell, ``(_start, S)``: the start
recipe run for ``round`` rounds and checkpointed, an ordinary run folder
``<runs-dir>/_start/seed-<S>/`` recorded as a trial like the others (same claiming, retry,
recovery). It is enqueued before its seed's conditions, so it has the lower trial number. A
condition cell of seed S is not claimed before that start cell is done; it then runs with
``run_recipe(start_from="<start run>:<round>")``. A worker that finds only blocked cells waits
(polling, and recovering dead workers' claims as it goes) while a start is waiting or running
elsewhere; a start never waits on anything, so workers cannot deadlock. When a start cell
failed, its dependants are failed at once with a message naming it; ``--retry-failed`` retries
the start and then them.

Re-evaluations (``evaluations:``). A condition cell whose run finished is re-evaluated by
the worker that ran it, before it is recorded done: ``evals/<NAME>.json`` per evaluation
(:func:`advx.use.evaluate_run`, the body of ``advx eval``). A worker with no cell left to
claim evaluates what done cells still lack (cells finished before the key was added, a worker
killed between its run and its evaluations, an evaluation that failed), each under a lock
file ``evals/.<NAME>.lock`` so two workers never evaluate the same thing. An evaluation that
names the same checkpoint with the same overrides as one the cell already has is a copy of
it (``same_as``), not a second evaluation (the AdaGRPO study's best round is often its final
one); one naming the shared start's checkpoint a cell branched from (a ``best`` that is round
0) is made once per seed in the start's folder and copied (:func:`_start_evaluation`); a
worker that finds another making it records its cell done without it and copies it in the
catch-up pass, where it waits for it. A failed evaluation does not fail its cell: the run is
a result; the evaluation is retried by the next ``advx compare`` and ``show`` counts the cell
out of that metric.

Limits (``--seeds``, ``--budget``; :class:`Limits`). An invocation may claim only some seeds'
cells (the others stay waiting for another invocation, another machine, a later session), and
only cells it expects to finish before a deadline: a cell's expected time is the median time
(run + re-evaluations) of the done cells of its condition (those imported from a ledger
included; else of all done condition cells; unknown before the first is done: then it is
claimed), and a shared start is claimed only when it and the quickest of its seed's conditions
fit, since a start whose machine is gone before any of its cells finished is lost work. The
deadline limits claims, never a running cell.

A worker that dies leaves its cell RUNNING: Optuna's heartbeat (recorded every 30 s by a
thread) lets any later worker fail it after the grace period, and a worker on the same host
fails it at once when the owning process no longer exists.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import socket
import statistics
import sys
import threading
import time
import uuid
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.markup import escape

from advx.compare import ledger
from advx.compare.spec import START, CompareSpec, Evaluation, check_conditions
from advx.errors import AdvxError, ConfigError, print_error
from advx.plugins import Registry
from advx.provenance import code_version, machine
from advx.recipe import import_plugins
from advx.sweep.storage import make_storage
from advx.sweep.workers import spawn_workers

__all__ = ["Cell", "CompareResult", "Limits", "cells_of", "default_runs_dir", "evaluate_cell",
           "existing_storage", "load_cells", "mixed_starts", "open_study", "parse_budget",
           "parse_redo", "parse_seeds", "run_compare", "storage_url", "time_left", "work"]

console = Console(stderr=True, soft_wrap=True)


def default_runs_dir(spec: CompareSpec, runs_root: Path = Path("runs")) -> Path:
    """``runs/compares/<name>/``: the cells' folders and the default SQLite file."""
    return Path(runs_root) / "compares" / spec.name


def storage_url(spec: CompareSpec, storage: str | None, runs_dir: Path) -> str:
    """``--storage``, else the file's ``storage:``, else ``sqlite:///<runs-dir>/compare.db``."""
    return storage or spec.storage or f"sqlite:///{(Path(runs_dir) / 'compare.db').resolve()}"


# --------------------------------------------------------------------------- cells


@dataclass
class Cell:
    """One (condition, seed) and what the storage says about it.

    state: new | waiting | running | done | failed | interrupted.
    """

    condition: str
    seed: int
    state: str = "new"
    trial: FrozenTrial | None = None
    attempts: int = 0

    @property
    def error(self) -> str:
        return str(self.trial.user_attrs.get("error", "")) if self.trial else ""

    @property
    def run_dir(self) -> str | None:
        return self.trial.user_attrs.get("run_dir") if self.trial else None

    @property
    def metrics(self) -> dict[str, float | None]:
        return dict(self.trial.user_attrs.get("metrics", {})) if self.trial else {}

    @property
    def rounds(self) -> list[dict[str, Any]]:
        return list(self.trial.user_attrs.get("rounds", [])) if self.trial else []


def _key(trial: FrozenTrial) -> tuple[str, int] | None:
    condition, seed = trial.user_attrs.get("condition"), trial.user_attrs.get("seed")
    if condition is None or seed is None or trial.user_attrs.get("superseded"):
        return None
    return str(condition), int(seed)


def cells_of(spec: CompareSpec, trials: Sequence[FrozenTrial],
             starts: bool = False) -> list[Cell]:
    """The state of every cell of ``spec`` (trials of cells no longer in the file are
    ignored), in the spec's order; with ``starts``, the shared-start cells too."""
    by_cell: dict[tuple[str, int], list[FrozenTrial]] = defaultdict(list)
    for trial in sorted(trials, key=lambda t: t.number):
        key = _key(trial)
        if key is not None:
            by_cell[key].append(trial)
    cells = []
    for condition, seed in (spec.all_cells if starts else spec.cells):
        mine = by_cell.get((condition, seed), [])
        cell = Cell(condition, seed, attempts=len(mine))
        for state, label in ((TrialState.COMPLETE, "done"), (TrialState.RUNNING, "running"),
                             (TrialState.WAITING, "waiting")):
            found = [t for t in mine if t.state == state]
            if found:
                cell.state, cell.trial = label, found[0]
                break
        else:
            if mine:
                cell.trial = mine[-1]
                cell.state = "failed" if cell.trial.user_attrs.get("error") else "interrupted"
        cells.append(cell)
    return cells


# --------------------------------------------------------------------------- limits


@dataclass(frozen=True)
class Limits:
    """What one invocation's workers may claim (``--seeds``, ``--budget``); the default
    claims everything. Cells outside the limits stay waiting for a later invocation."""

    seeds: frozenset[int] | None = None
    """Only these seeds' cells (and shared starts); None: every seed."""
    deadline: float | None = None
    """``time.time()`` by which a claimed cell is expected to be done; None: no deadline."""

    def remaining_s(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.time()


def parse_seeds(text: str, spec: CompareSpec, option: str = "--seeds") -> frozenset[int]:
    """``"0,2,5-9"`` → those seeds, each one of the file's (ConfigError naming ``option``
    otherwise)."""
    seeds: set[int] = set()
    for part in (p.strip() for p in str(text).split(",")):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if match is None or (match[2] is not None and int(match[2]) < int(match[1])):
            raise ConfigError(f"{option} {text!r}: {part!r} is not a seed or a range; write "
                              "seeds as e.g. 0,2,5-9")
        seeds.update(range(int(match[1]), int(match[2] or match[1]) + 1))
    unknown = sorted(seeds - set(spec.seeds))
    if unknown:
        raise ConfigError(f"{option} {text!r}: {spec.path} has no seed "
                          f"{', '.join(map(str, unknown))} (its seeds: "
                          f"{', '.join(map(str, spec.seeds))}); change `seeds:` to add some")
    return frozenset(seeds)


def parse_budget(text: str) -> float:
    """``"2h30m"``, ``"90m"``, ``"45s"`` or plain seconds → seconds (ConfigError otherwise).
    Written here: the format is three units, too little for a dependency."""
    text = str(text).strip()
    match = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?",
                         text)
    if not text or match is None or not any(match.groups()):
        raise ConfigError(f"--budget {text!r}: expected a duration such as 2h30m, 90m, 600s "
                          "or 600 (seconds)")
    hours, minutes, seconds = (float(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _expected_s(spec: CompareSpec, trials: Sequence[FrozenTrial]) -> dict[str, float]:
    """Per condition (and ``_start``), the median time of its done cells: the run
    (``wall_s``) plus its re-evaluations (``eval_s``). A condition none of whose cells is done
    gets the median of every done condition cell (the conditions of a study usually differ in
    a few keys, not in cost); a start none of which is done, nothing."""
    times: dict[str, list[float]] = defaultdict(list)
    for trial in trials:
        key = _key(trial)
        wall = trial.user_attrs.get("wall_s")
        if key is not None and trial.state == TrialState.COMPLETE and \
                isinstance(wall, (int, float)):
            times[key[0]].append(float(wall) + float(trial.user_attrs.get("eval_s") or 0.0))
    expected = {condition: statistics.median(values) for condition, values in times.items()}
    others = [t for condition, values in times.items() if condition != START for t in values]
    if others:
        for condition in spec.conditions:
            expected.setdefault(condition, statistics.median(others))
    return expected


def time_left(spec: CompareSpec, cells: Sequence[Cell]) -> tuple[int, float, int]:
    """The cells not done yet (shared starts included; pass ``starts=True`` cells): how many,
    their expected time in seconds of one worker by the done cells' medians
    (:func:`_expected_s`), and how many of them have no expected time (no cell of theirs is
    done)."""
    expected = _expected_s(spec, [c.trial for c in cells if c.trial is not None])
    left = [c.condition for c in cells if c.state != "done"]
    return (len(left), sum(expected.get(c, 0.0) for c in left),
            sum(c not in expected for c in left))


def _fits(spec: CompareSpec, condition: str, expected: dict[str, float],
          remaining: float | None) -> bool:
    """Is ``condition``'s cell expected to finish in ``remaining`` seconds? A shared start
    only when the quickest of its seed's conditions also fits after it (a start is worth
    only the cells that branch from it)."""
    if remaining is None:
        return True
    if remaining <= 0:
        return False
    need = expected.get(condition, 0.0)
    if condition == START:
        need += min((expected.get(c, 0.0) for c in spec.conditions), default=0.0)
    return need <= remaining


# --------------------------------------------------------------------------- the study


def open_study(spec: CompareSpec, url: str) -> tuple[optuna.Study, optuna.storages.RDBStorage]:
    """Create the compare's study or load it (same name, same storage): a rerun continues."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = make_storage(url)
    # The direction is irrelevant (nothing is optimised); the value is the primary metric,
    # so that optuna-dashboard shows something useful.
    study = optuna.create_study(study_name=spec.name, storage=storage, load_if_exists=True)
    # a fresh storage on another machine still knows the definitions the ledger's cells ran
    stored = study.user_attrs.get("conditions") or {}
    recorded = stored or ledger.read_study(spec)
    mine = {name: _definition(spec, c) for name, c in spec.conditions.items()}
    if spec.shared_start is not None:
        mine[START] = {**_definition(spec, spec.shared_start), "round": spec.shared_start.round}
    registry = _registry(spec)
    for name, definition in mine.items():
        change = _changed(recorded.get(name), definition, registry)
        if change:
            raise ConfigError(
                f"{spec.path}: {'shared_start' if name == START else 'conditions.' + name} "
                f"changed since its cells ran in study {spec.name!r} ({change}); the finished "
                "cells would mix two definitions. Restore it (e.g. `git checkout` the recipe), "
                "or give the changed condition a new name, or the compare a new name (adding "
                "conditions or seeds is fine)"
            )
    if recorded and (START in recorded) != (START in mine):
        raise ConfigError(
            f"{spec.path}: shared_start was {'removed' if START in recorded else 'added'} since "
            f"cells of study {spec.name!r} ran; the finished cells would mix cells that branch "
            "from one start with cells that pre-train on their own. Give the compare a new name"
        )
    if not stored or any(name not in recorded or RECIPE_KEYS not in recorded[name]
                         for name in mine):
        # new conditions, or a study recorded before recipe contents were: recorded now
        recorded = {**recorded, **mine}
        study.set_user_attr("conditions", recorded)
        study.set_user_attr("compare", spec.to_dict())
    ledger.write_study(spec, recorded)
    return study, storage


RECIPE_KEYS = "recipe_keys"
"""The definition's entry holding the recipe file's own keys and values (dotted)."""


def _definition(spec: CompareSpec, condition: Any) -> dict[str, Any]:
    """What makes a condition's cells comparable across invocations and machines: its recipe
    (relative to the compare file, so checkouts in different places agree), its overrides,
    and what the recipe file says (its keys and values as written, without comments or the
    components' defaults): an edited recipe would silently change the cells still to run."""
    from advx.recipe import dotted, load_recipe

    recipe = os.path.relpath(condition.recipe, Path(spec.path).parent)
    written = OmegaConf.to_container(load_recipe(condition.recipe), resolve=False)
    return {"recipe": recipe, "overrides": list(condition.overrides),
            RECIPE_KEYS: dotted(written)}


def _changed(then: dict[str, Any] | None, now: dict[str, Any],
             registry: Registry | None = None) -> str | None:
    """How a condition's recorded definition differs from the file's now (None: it does not;
    nothing recorded yet, or recorded before recipe contents were, compares what it has).

    What is compared is what the cells run with, the recipe file's keys with the condition's
    overrides applied: editing a recipe default that every condition overrides (or moving a
    key from the overrides into the recipe) leaves the finished cells valid. With the
    components' ``registry``, a key absent on one side counts as its component's default (a
    preset's default may change when the compare file pins the old value for its cells)."""
    if then is None:
        return None
    if RECIPE_KEYS not in then:
        strip = [{k: v for k, v in d.items() if k != RECIPE_KEYS} for d in (then, now)]
        return None if strip[0] == strip[1] else f"then: {strip[0]}, now: {strip[1]}"
    rest = [{k: v for k, v in d.items() if k not in ("recipe", "overrides", RECIPE_KEYS)}
            for d in (then, now)]
    if rest[0] != rest[1]:
        return f"then: {rest[0]}, now: {rest[1]}"
    old, new = _run_keys(then), _run_keys(now)
    if old == new:
        return None
    differing = sorted(k for k in {*old, *new} if old.get(k, _ABSENT) != new.get(k, _ABSENT))
    # a key written now with the value the cells got from the component's default (a preset's
    # default changed, and the compare file pins the old value for every condition) is no change
    filled = [_with_defaults(keys, registry) for keys in (old, new)]
    if filled[0] is not None and filled[1] is not None:
        differing = [k for k in differing if filled[0].get(k, _ABSENT) != filled[1].get(k, _ABSENT)]
        if not differing:
            return None
    key = differing[0]
    before, after = (repr(d[key]) if key in d else "absent" for d in (old, new))
    return (f"{key} was {before} when its cells ran, is {after} now (its recipe file "
            f"{now['recipe']} with its overrides)")


def _run_keys(definition: dict[str, Any]) -> dict[str, Any]:
    """A recorded definition's recipe keys with its overrides applied, dotted."""
    from advx.recipe import apply_overrides, dotted

    applied = apply_overrides(_nested(definition[RECIPE_KEYS]), definition["overrides"])
    return dotted(OmegaConf.to_container(applied, resolve=False))


def _nested(keys: dict[str, Any]) -> DictConfig:
    """Dotted keys (as the study records them) back into a recipe config."""
    nested = OmegaConf.create({})
    for key, value in keys.items():
        OmegaConf.update(nested, key, value, force_add=True)
    return nested


def _registry(spec: CompareSpec) -> Registry:
    """The installed components plus the compare file's own plugins."""
    from advx.plugins import get_registry
    from advx.runner import run_plugins

    with run_plugins(import_plugins(spec.plugins, f"{spec.path}: plugins")) as pm:
        return get_registry(pm)


def _with_defaults(keys: dict[str, Any], registry: Registry | None) -> dict[str, Any] | None:
    """Dotted run keys with every component's defaults filled in (validation resolves them),
    or None without a registry or when the keys do not validate against it (a key renamed
    since): then only the keys as written are compared."""
    from advx.recipe import dotted, validate_recipe

    if registry is None:
        return None
    try:
        return dotted(validate_recipe(_nested(keys), registry).resolved)
    except ConfigError:  # a key renamed or removed since: compare the written keys only
        return None


_ABSENT = object()


def existing_storage(spec: CompareSpec, storage: str | None, runs_dir: Path) -> str | None:
    """:func:`storage_url`, or None when it names a SQLite file that does not exist (a fresh
    clone, where only the ledger knows the finished cells): reading must not create it."""
    from advx.sweep.storage import sqlite_path

    url = storage_url(spec, storage, runs_dir)
    db = sqlite_path(url)  # not removeprefix: a URL may carry ?timeout=... after the file
    return None if db is not None and not db.is_file() else url


def load_cells(spec: CompareSpec, url: str | None, starts: bool = False) -> list[Cell]:
    """The cells as the storage records them now (for ``show`` and the tests), with the
    ledger's entries of cells the storage has not finished (``url`` None: the ledger's
    alone); with ``starts``, the shared-start cells too."""
    stored: list[FrozenTrial] = []
    if url is not None:
        storage = make_storage(url)
        with contextlib.suppress(KeyError):
            stored = storage.get_all_trials(storage.get_study_id_from_name(spec.name),
                                            deepcopy=False)
    return cells_of(spec, [*stored, *ledger.missing(stored, spec)], starts)


def _trials(study: optuna.Study, storage: optuna.storages.RDBStorage,
            states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
    """The study's trials read from the database itself (not through Optuna's cache, which
    does not see the claims :func:`_claim` writes with plain SQL)."""
    return storage.get_all_trials(study._study_id, deepcopy=False, states=states)


def _enqueue(study: optuna.Study, storage: optuna.storages.RDBStorage, spec: CompareSpec,
             retry_failed: bool) -> int:
    """A WAITING trial for every cell that is new, interrupted, or failed and to be retried."""
    wanted = {"new", "interrupted", *(("failed",) if retry_failed else ())}
    cells = cells_of(spec, _trials(study, storage), starts=True)
    if _forget_lost_starts(spec, storage, cells):  # those starts are new now: read again
        cells = cells_of(spec, _trials(study, storage), starts=True)
    added = 0
    for cell in cells:
        if cell.state in wanted:
            study.enqueue_trial({}, user_attrs={
                "condition": cell.condition, "seed": cell.seed, "attempt": cell.attempts + 1,
                "previous_run_dir": cell.run_dir, "after_failure": cell.state == "failed",
            })
            added += 1
    return added


def _forget_lost_starts(spec: CompareSpec, storage: optuna.storages.RDBStorage,
                        cells: Sequence[Cell]) -> bool:
    """Mark superseded a done shared start of this host whose run folder is gone while some
    condition cell of its seed is still to run (e.g. conditions added after the folder was
    deleted to free disk): the cells would fail to branch from it, so the start becomes new
    and is rebuilt first, as on a fresh clone (ledger.py: a rebuilt start that logs other
    values is marked and warned about). Returns whether it marked one."""
    pending = {c.seed for c in cells if c.condition != START and c.state != "done"}
    lost = [cell.trial for cell in cells
            if cell.condition == START and cell.state == "done" and cell.seed in pending
            and cell.trial is not None and cell.run_dir and not Path(cell.run_dir).exists()
            and cell.trial.user_attrs.get("host") in (None, socket.gethostname())]
    for trial in lost:
        _mark_superseded(storage, trial)
    return bool(lost)


def _mark_superseded(storage: optuna.storages.RDBStorage, trial: FrozenTrial) -> None:
    """Mark a finished trial ``superseded`` (its cell counts as not run). Optuna refuses to
    update a finished trial through its API: one row here."""
    import sqlalchemy
    from optuna.storages._rdb.models import TrialUserAttributeModel  # as TrialModel in _claim

    with storage.engine.begin() as connection:
        connection.execute(sqlalchemy.insert(TrialUserAttributeModel).values(
            trial_id=trial._trial_id, key="superseded", value_json="true"))


def _claim(storage: optuna.storages.RDBStorage, trial_id: int) -> bool:
    """Atomically move a WAITING trial to RUNNING; True only for the one caller that did."""
    import sqlalchemy
    from optuna.storages._rdb.models import TrialModel  # Optuna's schema, stable since 2.x

    for attempt in range(20):
        try:
            with storage.engine.begin() as connection:
                result = connection.execute(
                    sqlalchemy.update(TrialModel)
                    .where(TrialModel.trial_id == trial_id,
                           TrialModel.state == TrialState.WAITING)
                    .values(state=TrialState.RUNNING, datetime_start=datetime.now())
                )
            return result.rowcount == 1
        except sqlalchemy.exc.OperationalError:  # SQLite busy beyond its timeout: try again
            time.sleep(0.2 * (attempt + 1))
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _recover(study: optuna.Study, storage: optuna.storages.RDBStorage) -> int:
    """Fail RUNNING cells whose worker is gone: on this host, a dead process (at once);
    anywhere, a heartbeat older than the grace period (Optuna's ``fail_stale_trials``)."""
    host, failed = socket.gethostname(), 0
    for trial in _trials(study, storage, (TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if trial.user_attrs.get("host") == host and isinstance(pid, int) and pid != os.getpid() \
                and not _pid_alive(pid):
            try:
                storage.set_trial_user_attr(trial._trial_id, "interrupted",
                                            f"worker {host}:{pid} is gone")
                storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
                failed += 1
            except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
                pass  # another worker got there first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return failed


class _Heartbeat:
    """Records the trial's heartbeat every ``interval`` seconds while a cell runs."""

    def __init__(self, storage: optuna.storages.RDBStorage, trial_id: int) -> None:
        self.storage, self.trial_id = storage, trial_id
        self.interval = storage.get_heartbeat_interval() or 30
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name="advx-heartbeat")

    def _beat(self) -> None:
        while not self.stop.is_set():
            # A transient database error must not kill the cell.
            with contextlib.suppress(Exception):
                self.storage.record_heartbeat(self.trial_id)
            self.stop.wait(self.interval)

    def __enter__(self) -> _Heartbeat:
        self.storage.record_heartbeat(self.trial_id)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


# --------------------------------------------------------------------------- one cell


class _StopCompare(ConfigError):
    """The primary metric was never produced by the first cell: a typo, not bad luck."""


def _cell_run_dir(runs_dir: Path, condition: str, seed: int, attempt: int) -> Path:
    base = Path(runs_dir) / condition / f"seed-{seed}"
    path = base if attempt <= 1 else base.with_name(f"seed-{seed}.{attempt}")
    while path.exists() and ((path / "metrics.jsonl").exists() or (path / "checkpoints").exists()):
        attempt += 1
        path = base.with_name(f"seed-{seed}.{attempt}")
    return path.resolve()


def _resumable(previous: str | None, after_failure: bool) -> Path | None:
    """The previous attempt's folder, when it holds a checkpoint to continue from. After a
    *failed* cell (``--retry-failed``), a run that finished is not resumed: it would end
    where it ended (e.g. without the primary metric) and fail again, so it gets a fresh
    attempt; an interrupted cell's run is always continued (its worker may have died after
    the run finished, and then resuming only records it)."""
    if not previous:
        return None
    from advx.results import load_run
    from advx.rundir import RunDir

    path = Path(previous)
    if not (path / "recipe.yaml").is_file() or RunDir(path).last_checkpoint() is None:
        return None
    return None if after_failure and load_run(path).finished_ok else path


def _run_cell(spec: CompareSpec, study: optuna.Study, storage: optuna.storages.RDBStorage,
              trial: FrozenTrial, runs_dir: Path, plugins: Sequence[Any],
              start_threads: int | None = None) -> str:
    """Run one claimed cell; record its outcome; return the cell's new state. A shared start
    runs on ``start_threads`` torch threads when given (the other workers of a one-seed
    invocation have nothing to do while it runs)."""
    from advx.results import FINISHED_OK, finite_number, load_run
    from advx.runner import run_recipe

    tid = trial._trial_id
    name = trial.user_attrs["condition"]
    is_start = name == START
    condition = spec.shared_start if is_start else spec.conditions[name]
    seed = int(trial.user_attrs["seed"])
    attempt = int(trial.user_attrs.get("attempt", 1))
    resume = _resumable(trial.user_attrs.get("previous_run_dir"),
                        after_failure=bool(trial.user_attrs.get("after_failure")))
    run_dir = resume or _cell_run_dir(runs_dir, name, seed, attempt)
    overrides = condition.cell_overrides(seed)
    branch = None if is_start else _start_of(spec, study, storage, seed)
    origin, start_id = branch if branch else (None, None)
    if is_start:  # which build of the start a cell branched from (a rebuilt one may differ)
        start_id = uuid.uuid4().hex
    threads = start_threads if is_start and start_threads else None
    code = _loaded_code(Path(spec.path).resolve().parent)
    for key, value in {"run_dir": str(run_dir), "host": socket.gethostname(), "pid": os.getpid(),
                       "machine": machine(), "overrides": overrides, "recipe": condition.recipe,
                       **({"threads": threads} if threads else {}),
                       "resumed": resume is not None, "code": code,
                       **({"from": origin} if origin else {}),
                       **({"start_id": start_id} if start_id else {})}.items():
        storage.set_trial_user_attr(tid, key, value)
    label = f"shared start seed {seed}" if is_start else f"{name} seed {seed}"
    console.print(f"cell [bold]{escape(label)}[/bold]: "
                  f"{'resuming' if resume else 'running'} in {run_dir}", highlight=False)
    started = time.perf_counter()
    try:
        with _Heartbeat(storage, tid), _torch_threads(threads):
            if resume is not None:
                result = run_recipe(resume=resume, plugins=plugins)
            else:
                result = run_recipe(condition.recipe, overrides, run_dir=run_dir,
                                    plugins=plugins, start_from=origin)
    except (KeyboardInterrupt, SystemExit):
        storage.set_trial_user_attr(tid, "interrupted", "stopped by the user")
        storage.set_trial_state_values(tid, TrialState.FAIL)
        raise
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}".strip()[:2000]
        storage.set_trial_user_attr(tid, "error", message)
        storage.set_trial_state_values(tid, TrialState.FAIL)
        console.print(f"cell [bold]{escape(label)}[/bold] failed: {escape(message)}",
                      highlight=False)
        return "failed"
    run = load_run(result.run_dir)
    # eval:NAME/... metrics are read from the cell's evals/ folder by `show`, later
    metrics = {m: run.value(m, spec.summary) for m in spec.metrics if not m.startswith("eval:")}
    rounds = [{"round": int(r.get("round", 0)), **{m: v for m in spec.metrics
                                                    if (v := finite_number(r.get(m))) is not None}}
              for r in run.evaluated_rounds()]
    storage.set_trial_user_attr(tid, "metrics", metrics)
    storage.set_trial_user_attr(tid, "rounds", [r for r in rounds if len(r) > 1])
    storage.set_trial_user_attr(tid, "status", run.status)
    storage.set_trial_user_attr(tid, "wall_s", time.perf_counter() - started)
    primary = metrics.get(spec.primary)
    problem = None
    if run.status not in FINISHED_OK:
        problem = f"the run ended with status {run.status!r} (see {result.run_dir})"
    elif is_start:
        if not (Path(result.run_dir) / "checkpoints" / f"round-{spec.shared_start.round}"
                ).is_dir():
            problem = (f"the start run left no checkpoint of round {spec.shared_start.round} "
                       f"in {result.run_dir}")
    elif primary is None:
        logged = sorted({k for r in run.rounds for k in r if "/" in k and not
                         k.startswith("time/")})
        problem = (f"primary metric {spec.primary!r} is missing or not finite in the run's "
                   f"summary.json {spec.summary!r} record; the run logged: "
                   f"{', '.join(logged) or 'nothing'}")
    if problem:
        storage.set_trial_user_attr(tid, "error", problem)
        storage.set_trial_state_values(tid, TrialState.FAIL)
        console.print(f"cell [bold]{escape(label)}[/bold] failed: {escape(problem)}",
                      highlight=False)
        if not is_start and primary is None and run.status in FINISHED_OK and not any(
                _key(t) and _key(t)[0] != START
                for t in _trials(study, storage, (TrialState.COMPLETE,))):
            raise _StopCompare(f"{spec.path}: primary: {problem}")
        return "failed"
    if is_start:
        # No value: a start cell is not a result (the dashboard's "best trial" ignores it).
        _record_in_ledger(spec, storage, tid)  # before COMPLETE: it may mark the trial
        storage.set_trial_state_values(tid, TrialState.COMPLETE)
        console.print(f"cell [bold]{escape(label)}[/bold] done: {result.run_dir}",
                      highlight=False)
        return "done"
    if spec.evaluations:
        started = time.perf_counter()
        with _Heartbeat(storage, tid):
            evaluate_cell(spec, Path(result.run_dir), plugins, label)
        storage.set_trial_user_attr(tid, "eval_s", time.perf_counter() - started)
    storage.set_trial_state_values(tid, TrialState.COMPLETE, values=[primary])
    _record_in_ledger(spec, storage, tid)
    console.print(f"cell [bold]{escape(label)}[/bold] done: {spec.primary}={primary:.4g}",
                  highlight=False)
    return "done"


@functools.cache
def _loaded_code(folder: Path) -> str:
    """The checkout's code version when this worker ran its first cell: the code it imported
    and runs every later cell with (a commit made while it runs does not change that)."""
    return code_version(folder)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` inside the block (None: unchanged)."""
    if not threads:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _record_in_ledger(spec: CompareSpec, storage: optuna.storages.RDBStorage,
                      trial_id: int) -> None:
    """Write a done cell's ledger entry. A rebuilt shared start that logged the values its
    entry records takes over the recorded build's ``start_id`` (its seed's cells, here and in
    the ledger, then count as one build); one whose values differ keeps the entry its seed's
    finished cells branched from and is marked ``ledger_differs`` with a warning
    (:mod:`advx.compare.ledger`; the entry is replaced once no done cell of the seed is of the
    earlier build, see :func:`run_compare`)."""
    if spec.ledger is None:
        return
    trial = storage.get_trial(trial_id)
    if trial.user_attrs.get("condition") == START:
        recorded = ledger.read_entry(ledger.entry_path(spec, START, int(trial.user_attrs["seed"])))
        change = _start_differs(recorded, trial) if recorded is not None else None
        if change is not None:
            storage.set_trial_user_attr(trial_id, "ledger_differs", change)
            console.print(f"[yellow]warning[/yellow]: the rebuilt shared start of seed "
                          f"{trial.user_attrs.get('seed')} differs from the one its ledger "
                          f"records ({escape(change)}); its seed's remaining cells branch from "
                          "this one", highlight=False)
            return
        if recorded is not None:
            storage.set_trial_user_attr(trial_id, "start_id",
                                        (recorded.get("user_attrs") or {}).get("start_id") or "")
            trial = storage.get_trial(trial_id)
    ledger.write_entry(spec, trial)


def _start_differs(entry: dict[str, Any], start: FrozenTrial) -> str | None:
    """How a rebuilt shared start's final record differs from its ledger ``entry``'s
    (timings aside; the first key, named): None when equal."""
    from advx.results import load_run

    then = _logged_values((entry.get("summary") or {}).get("final") or {})
    now = _logged_values(load_run(str(start.user_attrs["run_dir"])).summary.get("final") or {})
    for key in sorted(then.keys() | now.keys()):
        if not _same_value(then.get(key), now.get(key)):
            return f"{key} was {then.get(key)!r}, is {now.get(key)!r} now"
    return None


REBUILT_REL_TOL = 1e-5
"""How far a rebuilt start's logged floats may be from the recorded ones and still count as
the same build: the same code on the same CPU kind reproduces a start up to the order of float
reductions (seed 5 of the negatives study: a loss of 0.2906136 rebuilt as 0.2906133), while a
changed code path or library moves them by far more."""


def _same_value(then: Any, now: Any) -> bool:
    """Equal, or (both numbers) within :data:`REBUILT_REL_TOL` of each other."""
    if isinstance(then, int | float) and isinstance(now, int | float):
        return math.isclose(then, now, rel_tol=REBUILT_REL_TOL, abs_tol=1e-9)
    return then == now


# --------------------------------------------------------------------------- re-evaluations


def evaluate_cell(spec: CompareSpec, run_dir: Path, plugins: Sequence[Any] = (),
                  label: str = "", wait: bool = False) -> int:
    """Write the ``evaluations:`` that ``run_dir`` (a finished condition cell) lacks; returns
    how many were written. One that fails is reported and left for the next invocation. One
    of the shared start's checkpoint that another worker of this host is making is waited for
    when ``wait`` (a worker with nothing left to run), else left to the catch-up pass: making
    it again would cost a whole evaluation while the worker could run the next cell."""
    written = 0
    for evaluation in spec.evaluations.values():
        if _evaluation_of(run_dir, evaluation) is not None:
            continue
        where = f"cell {label or run_dir}: evaluation {evaluation.name}"
        try:
            with _evaluation_lock(run_dir, evaluation.name) as locked:
                if not locked or _evaluation_of(run_dir, evaluation) is not None:
                    continue  # another worker holds it, or wrote it while we looked
                console.print(f"{escape(where)}: {_describe(evaluation)}", highlight=False)
                started = time.perf_counter()
                copied = _same_evaluation(spec, run_dir, evaluation)
                if copied is None:
                    copied = _start_evaluation(run_dir, evaluation, plugins, wait)
                if copied is _BUSY:
                    console.print(f"{escape(where)}: another worker is making its shared "
                                  "start's evaluation; copied when it is written",
                                  highlight=False)
                    continue
                if copied is None:
                    from advx.use import evaluate_run

                    evaluate_run(run_dir, None if evaluation.round == "final" else
                                 evaluation.round, evaluation.overrides, evaluation.name,
                                 plugins)
                console.print(f"{escape(where)}: written "
                              + (f"(same checkpoint and overrides as {copied})" if copied else
                                 f"in {time.perf_counter() - started:.0f} s"), highlight=False)
                written += 1
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            console.print(f"{escape(where)} failed (retried by the next `advx compare`): "
                          f"{escape(type(exc).__name__)}: {escape(str(exc))[:2000]}",
                          highlight=False)
    return written


def _describe(evaluation: Evaluation) -> str:
    return (f"round {evaluation.round}"
            + (f", {' '.join(evaluation.overrides)}" if evaluation.overrides else ""))


def _evaluation_file(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / "evals" / f"{name}.json"


def _evaluation_of(run_dir: Path, evaluation: Evaluation) -> dict[str, Any] | None:
    """The cell's record of ``evaluation``, when it has one made as the file asks now (same
    requested round, same overrides); None when it must be (re)made."""
    try:
        record = json.loads(_evaluation_file(run_dir, evaluation.name).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("overrides") != evaluation.overrides or \
            record.get("requested_round") != evaluation.round:
        return None
    return record


def _same_evaluation(spec: CompareSpec, run_dir: Path, evaluation: Evaluation) -> str | None:
    """When the cell already has an evaluation of the checkpoint ``evaluation`` names, with
    the same overrides, write a copy of it under ``evaluation.name`` (marked ``same_as``) and
    return its name; else None. Evaluation is deterministic for a checkpoint and overrides
    (``advx.use.evaluate_run``), so the copy is what a second evaluation would give."""
    from advx.rundir import atomic_write_text, jsonable
    from advx.use import existing_run, resolve_round

    rundir = existing_run(run_dir)
    loop = OmegaConf.load(rundir.recipe_path).get("loop") or {}
    at = resolve_round(rundir, None if evaluation.round == "final" else evaluation.round,
                       str(loop.get("monitor") or ""), str(loop.get("monitor_mode") or "max"))
    for other in spec.evaluations.values():
        record = _evaluation_of(run_dir, other) if other.name != evaluation.name else None
        if record is not None and record.get("round") == at and \
                record.get("overrides") == evaluation.overrides:
            copy = {**record, "requested_round": evaluation.round, "same_as": other.name}
            atomic_write_text(_evaluation_file(run_dir, evaluation.name),
                              json.dumps(jsonable(copy), indent=2) + "\n")
            return other.name
    return None


# Blocks a condition may change without changing how a checkpoint evaluates (the built-in
# tasks' evaluate reads none of them); _same_as_start also checks the round's logged metrics.
_TRAINING_ONLY = ("optimizer", "reward", "loop", "name")


_BUSY = "busy"  # _start_evaluation: another worker is making the start's evaluation


def _start_evaluation(run_dir: Path, evaluation: Evaluation, plugins: Sequence[Any],
                      wait: bool = False) -> str | None:
    """When the checkpoint ``evaluation`` names is the one the cell branched from (its round
    ``r`` of a shared start: typically ``best`` = round 0, where no training round improved
    on the start), the start's evaluation of it: made once per seed in the start's run folder
    (under its lock) and copied here, marked ``same_as``; the other conditions of the seed
    copy it too. Returns a description; None when the checkpoint is the cell's own or the
    two may evaluate differently; ``_BUSY`` when another worker is making the start's
    evaluation (waited for when ``wait`` and that worker is of this host)."""
    from advx.rundir import atomic_write_text, jsonable
    from advx.use import evaluate_run, existing_run, resolve_round

    rundir = existing_run(run_dir)
    recipe = OmegaConf.load(rundir.recipe_path)
    loop = recipe.get("loop") or {}
    at = resolve_round(rundir, None if evaluation.round == "final" else evaluation.round,
                       str(loop.get("monitor") or ""), str(loop.get("monitor_mode") or "max"))
    start = _same_as_start(run_dir, recipe, at)
    if start is None:
        return None
    name = f"{evaluation.name}-round-{at}"
    asked = Evaluation(name, at, evaluation.overrides)
    record = _evaluation_of(start, asked)
    while record is None:
        with _evaluation_lock(start, name) as locked:
            record = _evaluation_of(start, asked)
            if locked and record is None:
                _, record = evaluate_run(start, at, evaluation.overrides, name, plugins)
        if record is None:
            if not (wait and _held_on_this_host(start, name)):
                return _BUSY
            time.sleep(POLL_S)  # the next pass reads it under the lock, or takes the lock
    source = start / "evals" / f"{name}.json"
    copy = {**record, "run_dir": str(run_dir), "requested_round": evaluation.round,
            "same_as": str(source)}
    atomic_write_text(_evaluation_file(run_dir, evaluation.name),
                      json.dumps(jsonable(copy), indent=2) + "\n")
    return f"its shared start's round {at}, {source}"


def _same_as_start(run_dir: Path, recipe: Any, at: int) -> Path | None:
    """The start run whose round ``at`` the cell's round ``at`` is, when the cell branched
    from exactly that checkpoint, its recipe differs from the start's only in
    _TRAINING_ONLY blocks, and both runs logged the same values for that round's metrics
    (timings aside): the cell's own evaluation of the loaded weights agrees with the start's."""
    from advx.results import load_run
    from advx.use import existing_run

    cell = load_run(run_dir)
    origin = cell.summary.get("from") or {}
    start = Path(str(origin.get("run_dir") or ""))
    if origin.get("round") != at or not start.is_dir():
        return None
    theirs = OmegaConf.load(existing_run(start).recipe_path)
    if _outside_training(recipe) != _outside_training(theirs):
        return None
    records = [next((r for r in run.evaluated_rounds() if r.get("round") == at), None)
               for run in (cell, load_run(start))]
    if records[0] is None or records[1] is None:
        return None
    # the keys both logged (the start's round also holds its pre-training statistics)
    mine, theirs = (_logged_values(r) for r in records)
    shared = mine.keys() & theirs.keys()
    same = all(mine[k] == theirs[k] for k in shared)
    return start if shared and same else None


def _logged_values(record: dict[str, Any]) -> dict[str, Any]:
    """A round record's logged values, without timings (which differ between identical runs)
    and the record's own bookkeeping: what two runs that computed the same agree on."""
    return {k: v for k, v in record.items() if not k.endswith(("seconds", "_s"))
            and k not in ("kind", "round", "global_step", "evaluated")}


def _outside_training(cfg: Any) -> dict[str, Any]:
    plain = OmegaConf.to_container(cfg, resolve=False)
    return {k: v for k, v in plain.items() if k not in _TRAINING_ONLY}


@contextlib.contextmanager
def _evaluation_lock(run_dir: Path, name: str) -> Iterator[bool]:
    """``evals/.<name>.lock`` created exclusively; yields whether this process holds it. A
    lock left by a dead process of this host is taken over; one of another host is
    respected (delete it by hand if that worker is gone)."""
    lock = _lock_path(run_dir, name)
    lock.parent.mkdir(parents=True, exist_ok=True)
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _lock_holder(lock) or {}
            pid = holder.get("pid")
            if holder.get("host") == me["host"] and isinstance(pid, int) and \
                    not _pid_alive(pid):
                lock.unlink(missing_ok=True)  # its owner died: take it over
                continue
            yield False
            return
        with os.fdopen(fd, "w") as handle:
            json.dump(me, handle)
        try:
            yield True
        finally:
            lock.unlink(missing_ok=True)
        return
    yield False


def _lock_path(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / "evals" / f".{name}.lock"


def _lock_holder(lock: Path) -> dict[str, Any] | None:
    """The ``{"host", "pid"}`` a lock file records; None when it is gone or unreadable."""
    try:
        holder = json.loads(lock.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _held_on_this_host(run_dir: Path, name: str) -> bool:
    """Whether ``evals/.<name>.lock`` is held by a process of this host (one of another host
    may be gone with its machine: it is not waited for)."""
    holder = _lock_holder(_lock_path(run_dir, name))
    # None: released (or being written) just now; look again
    return holder is None or holder.get("host") == socket.gethostname()


def _evaluate_done_cells(spec: CompareSpec, study: optuna.Study,
                         storage: optuna.storages.RDBStorage, plugins: Sequence[Any],
                         limits: Limits = Limits()) -> int:
    """The evaluations that done condition cells of ``limits.seeds`` still lack (see the
    module docstring)."""
    written = 0
    for cell in cells_of(spec, _trials(study, storage)):
        if cell.state == "done" and cell.run_dir and Path(cell.run_dir).is_dir() and \
                (limits.seeds is None or cell.seed in limits.seeds):
            written += evaluate_cell(spec, Path(cell.run_dir), plugins,
                                     f"{cell.condition} seed {cell.seed}", wait=True)
    return written


def _builds(trials: Sequence[FrozenTrial]) -> dict[int, dict[str, list[str]]]:
    """Per seed, which build of its shared start each done condition cell branched from:
    {seed: {build: [conditions]}}, where ``current`` is the seed's start as the storage holds
    it now. A cell names its build by the start's ``start_id``; one recorded without it (before
    ids were) is ``current``, except a cell imported from the ledger into a seed whose start
    was rebuilt and came out different (``ledger_differs``): that one is ``earlier``."""
    current: dict[int, str | None] = {}
    rebuilt: set[int] = set()
    for trial in trials:
        key = _key(trial)
        if key is not None and key[0] == START and trial.state == TrialState.COMPLETE:
            current[key[1]] = trial.user_attrs.get("start_id")
            if trial.user_attrs.get("ledger_differs"):
                rebuilt.add(key[1])
    builds: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for trial in trials:
        key = _key(trial)
        if key is None or key[0] == START or trial.state != TrialState.COMPLETE:
            continue
        condition, seed = key
        start_id = trial.user_attrs.get("start_id")
        if start_id and start_id != current.get(seed):
            build = str(start_id)
        elif not start_id and key[1] in rebuilt and ledger.LEDGER_ATTR in trial.user_attrs:
            build = "earlier"
        else:
            build = "current"
        builds[seed][build].append(condition)
    return builds


def mixed_starts(cells: Sequence[Cell]) -> dict[int, list[str]]:
    """Seeds whose done condition cells branched from different builds of their shared start
    (a start rebuilt on another machine that came out different, see
    :mod:`advx.compare.ledger`): {seed: the conditions of each build, e.g. ["mle", "seqgan"]}.
    Their paired differences hold the builds' difference too. ``cells``: with the starts."""
    trials = [c.trial for c in cells if c.trial is not None]
    return {seed: [", ".join(group) for group in by_build.values()]
            for seed, by_build in sorted(_builds(trials).items()) if len(by_build) > 1}


def parse_redo(text: str, spec: CompareSpec) -> list[tuple[str, int]]:
    """``"mle:2,seqgan:0-1"`` → those (condition, seed) cells (ConfigError otherwise)."""
    cells = []
    for part in (p.strip() for p in str(text).split(",") if p.strip()):
        condition, _, seeds = part.rpartition(":")
        if condition == START:
            raise ConfigError(f"--redo {part!r}: a shared start is not redone by itself; redo "
                              f"the conditions of its seed (their start is rebuilt only where "
                              "it is gone)")
        if condition not in spec.conditions:
            raise ConfigError(f"--redo {part!r}: expected CONDITION:SEEDS with a condition of "
                              f"{spec.path} ({', '.join(spec.conditions)}), e.g. "
                              f"--redo {next(iter(spec.conditions))}:0-2")
        cells += [(condition, seed)
                  for seed in sorted(parse_seeds(seeds, spec, f"--redo {part!r}: seeds"))]
    if not cells:
        raise ConfigError(f"--redo {text!r}: expected CONDITION:SEEDS, e.g. --redo mle:2")
    return cells


def _redo(spec: CompareSpec, study: optuna.Study, storage: optuna.storages.RDBStorage,
          cells: Sequence[tuple[str, int]]) -> None:
    """Make done (or failed) cells new again: their trials are marked ``superseded`` and
    their ledger entries removed (git keeps the old ones), so they are enqueued and run from
    their seed's current start; the new result replaces the old in storage and ledger. For
    a cell whose result is stale, e.g. one that branched from an earlier build of its start."""
    import shutil

    trials = _trials(study, storage)
    for condition, seed in cells:
        mine = [t for t in trials if _key(t) == (condition, seed)]
        if any(t.state == TrialState.RUNNING for t in mine):
            raise ConfigError(f"--redo {condition}:{seed}: the cell is running now; wait for it "
                              "or stop its worker first")
        for trial in mine:
            if trial.state in (TrialState.COMPLETE, TrialState.FAIL):
                _mark_superseded(storage, trial)
        if spec.ledger is not None:
            entry = ledger.entry_path(spec, condition, seed)
            entry.unlink(missing_ok=True)
            shutil.rmtree(entry.with_suffix(".files"), ignore_errors=True)
        console.print(f"cell [bold]{escape(condition)} seed {seed}[/bold]: to be run again "
                      "(--redo)", highlight=False)


def _start_of(spec: CompareSpec, study: optuna.Study, storage: optuna.storages.RDBStorage,
              seed: int) -> tuple[str, str | None] | None:
    """``(<start run>:<round>, the start's start_id)`` for the cells of ``seed`` (None without
    a shared start; the id is None for a start recorded before ids were)."""
    if spec.shared_start is None:
        return None
    start = _start_cell(spec, _trials(study, storage), seed)
    if start is None or start.state != "done" or not start.run_dir:
        raise ConfigError(f"shared start of seed {seed} is not done")  # the claim checked it
    return (f"{start.run_dir}:{spec.shared_start.round}",
            start.trial.user_attrs.get("start_id") if start.trial else None)


def _start_cell(spec: CompareSpec, trials: Sequence[FrozenTrial], seed: int) -> Cell | None:
    return next((c for c in cells_of(spec, trials, starts=True)
                 if c.condition == START and c.seed == seed), None)


def _superseded(study: optuna.Study, storage: optuna.storages.RDBStorage,
                trial: FrozenTrial) -> bool:
    """Does another trial of the same cell already run or hold its result?"""
    key = _key(trial)
    for other in _trials(study, storage):
        if other.number == trial.number or _key(other) != key:
            continue
        if other.state == TrialState.COMPLETE or (
                other.state == TrialState.RUNNING and other.number < trial.number):
            return True
    return False


# --------------------------------------------------------------------------- workers


def work(spec: CompareSpec, url: str, runs_dir: Path, retry_failed: bool = False,
         plugins: Sequence[Any] = (), limits: Limits = Limits(),
         start_threads: int | None = None) -> int:
    """One worker: enqueue what is missing, then claim and run cells until none waits
    (within ``limits``); shared starts on ``start_threads`` threads when given. Returns the
    number of cells this worker ran."""
    plugins = [*import_plugins(spec.plugins, f"{spec.path}: plugins"), *plugins]
    study, storage = open_study(spec, url)
    _recover(study, storage)
    _enqueue(study, storage, spec, retry_failed)
    ran = 0
    while True:
        claimed, blocked = _next_cell(spec, study, storage, limits)
        if claimed is None:
            if not blocked:
                if spec.evaluations:
                    _evaluate_done_cells(spec, study, storage, plugins, limits)
                _say_left(spec, study, storage, limits)
                return ran
            # Only cells whose shared start is waiting or running elsewhere are left: wait for
            # it, recovering dead workers' claims (a killed start is enqueued again).
            time.sleep(POLL_S)
            _recover(study, storage)
            _enqueue(study, storage, spec, retry_failed=False)
            continue
        claimed = storage.get_trial(claimed._trial_id)
        if _superseded(study, storage, claimed):
            storage.set_trial_user_attr(claimed._trial_id, "superseded", True)
            storage.set_trial_state_values(claimed._trial_id, TrialState.PRUNED)
            continue
        storage.set_trial_user_attr(claimed._trial_id, "pid", os.getpid())
        storage.set_trial_user_attr(claimed._trial_id, "host", socket.gethostname())
        _run_cell(spec, study, storage, claimed, runs_dir, plugins, start_threads)
        ran += 1


def _say_left(spec: CompareSpec, study: optuna.Study, storage: optuna.storages.RDBStorage,
              limits: Limits) -> None:
    """Name the cells a worker leaves waiting because of ``limits`` (none: silent)."""
    trials = _trials(study, storage)
    left = [_key(t) for t in _waiting(spec, trials)]
    if not left or limits == Limits():
        return
    outside = sum(limits.seeds is not None and seed not in limits.seeds for _, seed in left)
    late = len(left) - outside
    expected, remaining = _expected_s(spec, trials), limits.remaining_s()
    parts = [f"{outside} of other seeds (--seeds)"] if outside else []
    if late:
        quickest = min((expected.get(c, 0.0) for c, s in left
                        if limits.seeds is None or s in limits.seeds), default=0.0)
        parts.append(f"{late} expected to take longer than the {max(remaining or 0, 0) / 60:.0f} "
                     f"min left of --budget (the quickest ≈ {quickest / 60:.0f} min)")
    console.print(f"compare {spec.name}: this worker stops; {len(left)} cell(s) left waiting "
                  f"for a later `advx compare`: {'; '.join(parts)}", highlight=False,
                  markup=False)


def _waiting(spec: CompareSpec, trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The WAITING trials of ``spec``'s cells. A cell of a condition (or seed) this file does
    not name is another invocation's: one running a newer version of the file that added a
    condition, while this worker runs the version it started with. It is left waiting for
    that invocation, never claimed (nor pruned) here."""
    cells = set(spec.all_cells)
    return [t for t in trials if t.state == TrialState.WAITING and _key(t) in cells]


POLL_S = 1.0
"""How often a worker whose remaining cells wait for a shared start looks again."""


def _next_cell(spec: CompareSpec, study: optuna.Study, storage: optuna.storages.RDBStorage,
               limits: Limits = Limits()) -> tuple[FrozenTrial | None, bool]:
    """Claim the first claimable WAITING trial in the file's cell order (seed-major, each
    seed's start before its conditions; ties by trial number), so a cell enqueued again
    after an interruption runs with its seed rather than after every later seed, and a
    partial study holds whole seeds. A condition cell is claimable only once its seed's
    shared start is done; one whose start failed is failed here (with a message naming the
    start). Cells outside ``limits`` (another seed, expected past the deadline) are left
    waiting. Returns (the claimed trial or None, whether some cell is still blocked by a start
    that is waiting or running)."""
    trials = _trials(study, storage)
    order = {cell: i for i, cell in enumerate(spec.all_cells)}
    waiting = sorted((t for t in _waiting(spec, trials)
                      if limits.seeds is None or _key(t)[1] in limits.seeds),
                     key=lambda t: (order[_key(t)], t.number))
    expected, remaining = _expected_s(spec, trials), limits.remaining_s()
    blocked = False
    for trial in waiting:
        condition, seed = _key(trial)
        if not _fits(spec, condition, expected, remaining):
            continue
        if spec.shared_start is not None and condition != START:
            start = _start_cell(spec, trials, seed)
            state = start.state if start else "new"
            if state == "failed":
                if _claim(storage, trial._trial_id):
                    storage.set_trial_user_attr(
                        trial._trial_id, "error",
                        f"the shared start of seed {seed} failed ({start.error}); fix its cause "
                        f"and rerun with --retry-failed (the start runs again, then this cell)")
                    storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
                    console.print(f"cell [bold]{escape(condition)} seed {seed}[/bold] failed: "
                                  "its shared start failed", highlight=False)
                continue
            if state != "done":
                # blocked by a start that runs or will be claimed; one left out by the
                # limits will not run in this invocation, nor will this cell
                blocked = blocked or state == "running" or _fits(spec, START, expected, remaining)
                continue
        if _claim(storage, trial._trial_id):
            return trial, blocked
    return None, blocked


def _worker_entry(spec_dict: dict[str, Any], url: str, runs_dir: str,
                  limits: Limits = Limits(), start_threads: int | None = None) -> None:
    """Entry of a spawned worker process (``--jobs N``)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        work(CompareSpec.from_dict(spec_dict), url, Path(runs_dir), limits=limits,
             start_threads=start_threads)
    except AdvxError as exc:
        print_error(exc)
        sys.exit(exc.exit_code)


@dataclass
class CompareResult:
    """What a ``compare`` invocation left: the storage URL, the runs folder and every cell."""

    name: str
    storage: str
    runs_dir: Path
    cells: list[Cell] = field(default_factory=list)
    starts: list[Cell] = field(default_factory=list)
    """The shared-start cells (one per seed; empty without ``shared_start``)."""

    def count(self, state: str) -> int:
        return sum(c.state == state for c in self.cells)


def run_compare(spec: CompareSpec, storage: str | None = None, jobs: int = 1,
                runs_dir: Path | None = None, retry_failed: bool = False,
                plugins: Sequence[Any] = (), limits: Limits = Limits(),
                start_threads: int | None = None,
                redo: Sequence[tuple[str, int]] = ()) -> CompareResult:
    """Check every condition, open the study, then run the cells with ``jobs`` local worker
    processes (in this process for one). Returns when no cell within ``limits`` is waiting
    any more (see the module docstring, "Limits").

    ``start_threads``: torch threads of a shared start's run (default: the workers' own, one
    under ``--jobs``); with one seed to run, its start is all there is to do until it is done.

    ``redo``: (condition, seed) cells to run again although done (:func:`_redo`).

    ``plugins``: extra in-process plugin objects (this process only; spawned workers import
    the compare file's ``plugins:`` modules instead).
    """
    if jobs < 1:
        raise ConfigError(f"--jobs: expected a positive integer, got {jobs}")
    if start_threads is not None and start_threads < 1:
        raise ConfigError(f"--start-threads: expected a positive integer, got {start_threads}")
    check_conditions(spec, plugins)
    runs_dir = Path(runs_dir) if runs_dir else default_runs_dir(spec)
    url = storage_url(spec, storage, runs_dir)
    study, rdb = open_study(spec, url)
    _recover(study, rdb)
    _redo(spec, study, rdb, redo)
    imported = ledger.missing(_trials(study, rdb), spec)
    for trial in imported:  # (not study.add_trial: it refuses a start's missing value)
        rdb.create_new_trial(study._study_id, template_trial=trial)
    added = _enqueue(study, rdb, spec, retry_failed)
    cells = cells_of(spec, _trials(study, rdb))
    states = Counter(c.state for c in cells)
    if spec.shared_start is not None:
        added_note = f" (+ {len(spec.seeds)} shared start cells)"
    else:
        added_note = ""
    # what is left, not what this call enqueued: a second worker enqueues nothing new
    console.print(f"compare {spec.name}: {len(cells)} cells{added_note}: {states['done']} "
                  f"done, {states['running']} running, {states['waiting']} to run "
                  f"({added} enqueued now), {states['failed']} failed; {jobs} job(s); runs in "
                  f"{runs_dir}"
                  + (f"; {len(imported)} cell(s) imported from the ledger {spec.ledger}"
                     if imported else ""), highlight=False, markup=False)
    if jobs == 1:
        work(spec, url, runs_dir, plugins=plugins, limits=limits, start_threads=start_threads)
    else:
        spawn_workers(_worker_entry,
                      [(spec.to_dict(), url, str(runs_dir), limits, start_threads)] * jobs,
                      "compare")
    done = _trials(study, rdb, (TrialState.COMPLETE,))
    builds = _builds(done)
    for trial in done:
        # entries done cells lack: cells finished before `ledger:` was set, or whose
        # evaluations were written after them; a rebuilt start that differs from its entry
        # replaces it once every done cell of its seed branched from it
        key = _key(trial)
        if key is not None and (not trial.user_attrs.get("ledger_differs")
                                or set(builds.get(key[1], {})) <= {"current"}):
            ledger.write_entry(spec, trial)
    every = load_cells(spec, url, starts=True)
    return CompareResult(spec.name, url, runs_dir, [c for c in every if c.condition != START],
                         [c for c in every if c.condition == START])

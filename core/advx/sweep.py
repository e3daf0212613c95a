"""``advx sweep``: Optuna studies over any dotted recipe keys.

A sweep file names a recipe, fixed overrides, a search space, the objective and the Optuna
machinery (sampler, pruner, storage)::

    name: alpha_beta                      # the study name (default: the file's stem)
    recipe: recipes/ppo_cls_loss.yaml     # relative to the working directory or this file
    overrides: {loop.rounds: 3}           # fixed for every trial (or a list of "key=value")
    space:
      reward.alpha: {type: float, low: 0.0, high: 1.0}
      reward.beta:  {type: float, low: 1.0e-3, high: 1.0, log: true}
      loop.rl_steps: {type: int, low: 5, high: 40, step: 5}
      optimizer.name: {type: categorical, choices: [ppo, reinforce]}
    objective: {metric: cold/pr_auc, direction: maximize, summary: final}
    sampler: {name: tpe, seed: 0}         # tpe | random | cmaes | gp | qmc | bruteforce,
                                          # + their kwargs
    pruner: {name: median, n_warmup_steps: 1}  # median | percentile | successive_halving |
                                          # hyperband | threshold | wilcoxon | none, + kwargs
    n_trials: 20                          # the study's target number of finished trials
    storage: null                         # default sqlite:///runs/sweeps/<name>.db
    plugins: []                           # extra plugin modules loaded into every trial

Every trial is an ordinary run directory (``runs/sweeps/<name>/trial-<n>/``) made by
:func:`advx.runner.run_recipe`; its path, host, overrides, final metrics and (when it failed)
the error are stored as the trial's user attributes. Parallelism is Optuna's own: every
worker process, on this machine (``--workers N``) or on others (the same command pointed at
one ``--storage postgresql://...``), runs ``study.optimize`` against the shared storage.

``n_trials`` counts trials of the *study*, not of one invocation: a worker starts a new
trial only while fewer than ``n_trials`` are finished or running, so rerunning a sweep
continues an interrupted study and ``--n-trials`` raises the target. Concurrent workers may
overshoot the target by at most (workers - 1) trials.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import json
import math
import multiprocessing
import os
import socket
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import optuna
import typer
import yaml
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from advx.errors import AdvxError, ConfigError
from advx.hookspecs import hookimpl
from advx.loop import LoopConfig

__all__ = [
    "ObjectiveSpec",
    "ParamSpec",
    "SweepSpec",
    "check_space",
    "default_storage_url",
    "load_sweep",
    "make_storage",
    "open_study",
    "run_sweep",
    "suggest_overrides",
    "sweep_app",
]

SWEEP_KEYS = (
    "name", "description", "recipe", "overrides", "space", "objective", "sampler", "pruner",
    "n_trials", "storage", "plugins",
)
PARAM_TYPES = ("float", "int", "categorical")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
RUNS = Path("runs")

console = Console(stderr=True, soft_wrap=True)
# Heartbeats and stale-trial failing are marked experimental in Optuna 5; they are what
# keeps a killed worker's trial from staying RUNNING, so we use them and keep the log clean.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


# --------------------------------------------------------------------------- the sweep file


@dataclass
class ParamSpec:
    """One search-space entry: an Optuna distribution over a dotted recipe key."""

    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None


@dataclass
class ObjectiveSpec:
    """What a trial returns: ``metric`` from the run's ``summary.json``.

    ``summary`` picks the block: ``final`` (the last evaluated round) or ``best`` (the round
    that was best by the recipe's ``loop.monitor``).
    """

    metric: str
    direction: str = "maximize"
    summary: str = "final"


@dataclass
class SweepSpec:
    """A parsed, checked sweep file (see the module docstring)."""

    name: str
    recipe: Path
    space: dict[str, ParamSpec]
    objective: ObjectiveSpec
    overrides: list[str] = field(default_factory=list)
    description: str = ""
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "tpe"})
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "median"})
    n_trials: int = 20
    storage: str | None = None
    plugins: list[str] = field(default_factory=list)
    source: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored in the study; also what spawned workers receive)."""
        data = dataclasses.asdict(self)
        data["recipe"] = str(self.recipe)
        data["source"] = str(self.source) if self.source else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepSpec:
        data = dict(data)
        data["recipe"] = Path(data["recipe"])
        data["source"] = Path(data["source"]) if data.get("source") else None
        data["space"] = {k: ParamSpec(**v) for k, v in data["space"].items()}
        data["objective"] = ObjectiveSpec(**data["objective"])
        return cls(**data)


def _where(path: Path) -> str:
    return f"sweep file {path}"


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file; every problem is a ConfigError naming file and key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"malformed YAML at {where}: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{_where(path)} must be a YAML mapping (recipe:, space:, objective:)")
    unknown = [k for k in raw if k not in SWEEP_KEYS]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), SWEEP_KEYS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{_where(path)}: unknown key {unknown[0]!r}.{hint} "
            f"Allowed keys: {', '.join(SWEEP_KEYS)}."
        )
    for key in ("recipe", "space", "objective"):
        if raw.get(key) in (None, "", {}):
            raise ConfigError(f"{_where(path)}: {key}: required")

    recipe = _resolve_recipe_path(str(raw["recipe"]), path)
    spec = SweepSpec(
        name=str(raw.get("name") or path.stem),
        description=str(raw.get("description") or ""),
        recipe=recipe,
        overrides=_parse_overrides(raw.get("overrides"), path),
        space=_parse_space(raw["space"], path),
        objective=_parse_objective(raw["objective"], path),
        sampler=_parse_named(raw.get("sampler"), "sampler", "tpe", path),
        pruner=_parse_named(raw.get("pruner"), "pruner", "median", path),
        n_trials=_positive_int(raw.get("n_trials", 20), "n_trials", path),
        storage=str(raw["storage"]) if raw.get("storage") else None,
        plugins=[str(p) for p in (raw.get("plugins") or [])],
        source=path.resolve(),
    )
    if not all(c.isalnum() or c in "-_." for c in spec.name):
        raise ConfigError(
            f"{_where(path)}: name {spec.name!r} may only hold letters, digits, '-', '_', '.' "
            "(it names the study, its SQLite file and its run folder)"
        )
    _make_sampler(spec)  # bad sampler/pruner names or kwargs fail here, not in a worker
    _make_pruner(spec)
    return spec


def _resolve_recipe_path(recipe: str, sweep_path: Path) -> Path:
    candidates = [Path(recipe)]
    if not Path(recipe).is_absolute():
        candidates.append(sweep_path.parent / recipe)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    tried = " and ".join(str(c) for c in candidates)
    raise ConfigError(f"{_where(sweep_path)}: recipe: file not found (tried {tried})")


def _parse_overrides(raw: Any, path: Path) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, dict):
        return [_override(k, v) for k, v in _flatten(raw).items()]
    if isinstance(raw, list) and all(isinstance(item, str) and "=" in item for item in raw):
        return list(raw)
    raise ConfigError(
        f"{_where(path)}: overrides: expected a mapping {{reward.alpha: 0.5}} or a list of "
        f"'key=value' strings, got {raw!r}"
    )


def _flatten(raw: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{loop: {rounds: 2}}`` and ``{loop.rounds: 2}`` both become ``{"loop.rounds": 2}``."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _override(key: str, value: Any) -> str:
    """``key=value`` with the value written as YAML flow (JSON is valid YAML)."""
    return f"{key}={json.dumps(value)}"


def _parse_space(raw: Any, path: Path) -> dict[str, ParamSpec]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(
            f"{_where(path)}: space: expected a mapping of dotted recipe keys to "
            "{type: float|int|categorical, ...}"
        )
    space = {}
    for key, entry in raw.items():
        where = f"{_where(path)}: space.{key}"
        if not isinstance(entry, dict):
            raise ConfigError(
                f"{where}: expected a mapping such as {{type: float, low: 0, high: 1}}"
            )
        allowed = {f.name for f in dataclasses.fields(ParamSpec)}
        extra = sorted(set(entry) - allowed)
        if extra:
            raise ConfigError(f"{where}: unknown key {extra[0]!r}; allowed: {sorted(allowed)}")
        kind = entry.get("type")
        if kind not in PARAM_TYPES:
            raise ConfigError(f"{where}.type: expected one of {PARAM_TYPES}, got {kind!r}")
        param = ParamSpec(**entry)
        _check_param(param, where)
        space[str(key)] = param
    return space


def _check_param(param: ParamSpec, where: str) -> None:
    if param.type == "categorical":
        if not isinstance(param.choices, list) or not param.choices:
            raise ConfigError(f"{where}.choices: a non-empty list is required for categorical")
        if any(isinstance(c, (dict, list)) for c in param.choices):
            raise ConfigError(f"{where}.choices: only scalars (numbers, strings, booleans)")
        return
    for bound in ("low", "high"):
        value = getattr(param, bound)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(
                f"{where}.{bound}: a number is required for {param.type}, got {value!r}"
            )
    whole = float(param.low).is_integer() and float(param.high).is_integer()
    if param.type == "int" and not whole:
        raise ConfigError(
            f"{where}: int bounds must be whole numbers, got [{param.low}, {param.high}]"
        )
    if param.low > param.high:
        raise ConfigError(f"{where}: low ({param.low}) is greater than high ({param.high})")
    if param.log and param.low <= 0:
        raise ConfigError(f"{where}: log: true needs low > 0, got low={param.low}")
    if param.log and param.step is not None:
        raise ConfigError(f"{where}: step and log: true cannot be combined (Optuna's rule)")
    if param.step is not None and param.step <= 0:
        raise ConfigError(f"{where}.step: must be > 0, got {param.step}")


def _parse_objective(raw: Any, path: Path) -> ObjectiveSpec:
    if isinstance(raw, str):
        raw = {"metric": raw}
    if not isinstance(raw, dict) or not raw.get("metric"):
        raise ConfigError(
            f"{_where(path)}: objective: expected {{metric: cold/pr_auc, direction: maximize}}"
        )
    extra = sorted(set(raw) - {"metric", "direction", "summary"})
    if extra:
        raise ConfigError(f"{_where(path)}: objective: unknown key {extra[0]!r} "
                          "(allowed: metric, direction, summary)")
    objective = ObjectiveSpec(
        metric=str(raw["metric"]),
        direction=str(raw.get("direction", "maximize")),
        summary=str(raw.get("summary", "final")),
    )
    if objective.direction not in ("maximize", "minimize"):
        raise ConfigError(f"{_where(path)}: objective.direction: expected maximize or minimize, "
                          f"got {objective.direction!r}")
    if objective.summary not in ("final", "best"):
        raise ConfigError(f"{_where(path)}: objective.summary: expected final or best, "
                          f"got {objective.summary!r}")
    return objective


def _parse_named(raw: Any, what: str, default: str, path: Path) -> dict[str, Any]:
    if raw is None:
        return {"name": default}
    if isinstance(raw, str):
        return {"name": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("name", default), str):
        raise ConfigError(f"{_where(path)}: {what}: expected {{name: ..., <kwargs>}}, got {raw!r}")
    return {"name": default, **raw}


def _positive_int(value: Any, key: str, path: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{_where(path)}: {key}: expected a positive integer, got {value!r}")
    return value


# --------------------------------------------------------------------------- samplers, pruners

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
        raise ConfigError(f"{_where(spec.source or Path(spec.name))}: {what}.name: unknown "
                          f"{what} {name!r}; available: {', '.join(table)}")
    cls = getattr(module, table[name])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{_where(spec.source or Path(spec.name))}: {what} {name!r} "
                          f"({cls.__name__}) rejects {options}: {exc}") from exc


def _make_sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    return _instantiate(optuna.samplers, _SAMPLERS, spec.sampler, "sampler", spec)


def _make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    return _instantiate(optuna.pruners, _PRUNERS, spec.pruner, "pruner", spec)


# --------------------------------------------------------------------------- the search space


def suggest_overrides(trial: optuna.Trial, space: Mapping[str, ParamSpec]) -> list[str]:
    """Ask ``trial`` for a value of every key; return them as recipe overrides."""
    overrides = []
    for key, p in space.items():
        if p.type == "float":
            value: Any = trial.suggest_float(key, p.low, p.high, log=p.log, step=p.step)
        elif p.type == "int":
            step = int(p.step) if p.step else 1
            value = trial.suggest_int(key, int(p.low), int(p.high), log=p.log, step=step)
        else:
            value = trial.suggest_categorical(key, p.choices)
        overrides.append(_override(key, value))
    return overrides


def _probe_values(param: ParamSpec) -> list[Any]:
    """Values that must all be valid in the recipe: both bounds, or every choice."""
    if param.type == "categorical":
        return list(param.choices or [])
    if param.type == "int":
        return [int(param.low), int(param.high)]
    return [float(param.low), float(param.high)]


def _key_error(spec: SweepSpec, key: str, cfg: DictConfig, registry: Any) -> str | None:
    """Why ``key`` names nothing in the recipe or its component configs (None if it does)."""
    from advx.recipe import COMPONENT_KINDS, TOP_LEVEL_KEYS

    if OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=False) is not _MISSING:
        return None
    top, _, rest = key.partition(".")
    if top not in TOP_LEVEL_KEYS:
        close = difflib.get_close_matches(top, list(TOP_LEVEL_KEYS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"{top!r} is not a recipe key.{hint} Recipe keys: {', '.join(TOP_LEVEL_KEYS)}"
    if not rest:
        if top in ("seed", "device", "name", "description"):  # scalars with defaults
            return None
        return f"{top!r} is a whole block; search one of its keys ({top}.<key>)"
    if top == "loop":
        owner, config_class = "loop (advx.loop.LoopConfig)", LoopConfig
    elif top in COMPONENT_KINDS:
        name = OmegaConf.select(cfg, f"{top}.name", default=None)
        if not name:
            return f"the recipe has no {top}: block with a name, so {key!r} configures nothing"
        component = registry.get(top, str(name))
        owner, config_class = f"{top} {name!r} ({component.config_class.__name__})", \
            component.config_class
    else:
        return f"{key!r} is not in the recipe and {top!r} has no config class to look it up in"
    current: Any = config_class
    for part in rest.split("."):
        fields = {f.name: f for f in dataclasses.fields(current)}
        if part not in fields:
            close = difflib.get_close_matches(part, list(fields), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            return f"{owner} has no key {part!r}.{hint} Its keys: {', '.join(fields)}"
        hint_type = _field_type(current, part)
        if not dataclasses.is_dataclass(hint_type):
            return None if part == rest.split(".")[-1] else (
                f"{owner}: {part!r} is not a nested config, so {key!r} cannot exist"
            )
        current = hint_type
    return None


_MISSING = object()


def _field_type(config_class: type, name: str) -> Any:
    import typing

    try:
        return typing.get_type_hints(config_class).get(name)
    except Exception:
        return None


def check_space(spec: SweepSpec, registry: Any | None = None) -> DictConfig:
    """Check the recipe, every space key and the bounds against the registry, before any trial.

    Returns the base recipe (fixed overrides applied, interpolations kept).
    """
    from advx.plugins import get_registry
    from advx.recipe import load_recipe, validate_recipe

    registry = registry if registry is not None else get_registry()
    where = _where(spec.source) if spec.source else f"sweep {spec.name!r}"
    try:
        base = load_recipe(spec.recipe, spec.overrides)
        validate_recipe(base, registry)
    except AdvxError as exc:
        raise type(exc)(f"{where}: recipe {spec.recipe} with overrides {spec.overrides}: {exc}") \
            from exc
    for key, param in spec.space.items():
        problem = _key_error(spec, key, base, registry)
        if problem:
            raise ConfigError(f"{where}: space.{key}: unknown key: {problem}.")
        for value in _probe_values(param):
            try:
                validate_recipe(load_recipe(base, [_override(key, value)]), registry)
            except AdvxError as exc:
                raise ConfigError(f"{where}: space.{key}: the value {value!r} is not valid in "
                                  f"the recipe: {exc}") from exc
    return base


# --------------------------------------------------------------------------- storage, study


def default_storage_url(name: str, runs_root: Path = Path("runs")) -> str:
    """The embedded default: one SQLite file per study under ``runs/sweeps/``."""
    return f"sqlite:///{(Path(runs_root) / 'sweeps' / f'{name}.db').resolve()}"


def make_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats (a killed worker's trial is failed, not left RUNNING).

    A malformed URL, an unknown database driver or an unreachable server is a ConfigError.
    """
    import sqlalchemy
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(
            f"storage: {url!r} is not a database URL; use sqlite:///path/to/study.db or "
            "postgresql://user:password@host:5432/dbname"
        ) from exc
    if parsed.drivername == "postgresql":
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; advx[postgres] installs
        # psycopg2-binary. Use whichever driver is installed.
        parsed = parsed.set(drivername=f"postgresql+{_postgres_driver()}")
        url = parsed.render_as_string(hide_password=False)
    engine_kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database:
            raise ConfigError(f"storage: {url!r} names no SQLite file (sqlite:///runs/x.db)")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Several worker processes share the file: wait for the lock instead of failing.
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
    try:
        return _rdb_storage(url, engine_kwargs)
    except (sqlalchemy.exc.NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
        raise ConfigError(
            f"storage: no database driver for {parsed.drivername!r} ({exc}); for PostgreSQL "
            "install psycopg2-binary (pip install 'advx[postgres]')"
        ) from exc
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ArgumentError) as exc:
        safe = parsed.render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(f"storage: cannot connect to {safe}: {reason}") from exc


def _rdb_storage(url: str, engine_kwargs: dict[str, Any]) -> optuna.storages.RDBStorage:
    """``RDBStorage``, retried when workers starting together race to create its tables.

    On an empty PostgreSQL database two workers may both try ``CREATE TYPE``/``CREATE
    TABLE``; the loser gets an IntegrityError/ProgrammingError, and a retry finds the schema.
    """
    import random

    import sqlalchemy

    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=30, grace_period=120
                )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == 4:
                raise
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")  # pragma: no cover


def _postgres_driver() -> str:
    import importlib.util

    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return driver
    return "psycopg2"  # not installed: the error below says what to install


def open_study(spec: SweepSpec, storage: optuna.storages.BaseStorage,
               base_recipe: DictConfig | None = None) -> optuna.Study:
    """Create the study or load it (same name, same storage): a rerun continues it."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=spec.name, storage=storage, load_if_exists=True,
        direction=spec.objective.direction, sampler=_make_sampler(spec), pruner=_make_pruner(spec),
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
        raise ConfigError(_metric_message(spec, known))
    if base_recipe is not None:
        study.set_user_attr("sweep", spec.to_dict())
        study.set_user_attr("objective", dataclasses.asdict(spec.objective))
        study.set_user_attr("base_recipe", OmegaConf.to_yaml(base_recipe))
    return study


def _metric_message(spec: SweepSpec, available: Sequence[str]) -> str:
    close = difflib.get_close_matches(spec.objective.metric, list(available), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return (
        f"objective.metric {spec.objective.metric!r} is not produced by recipe {spec.recipe} "
        f"(summary.json {spec.objective.summary!r} block).{hint} "
        f"Available metrics: {', '.join(sorted(available)) or 'none'}."
    )


# --------------------------------------------------------------------------- one trial


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
        self.plugins = [*_import_plugins(spec.plugins), *plugins]
        self.code = _code_version(spec.recipe.parent)

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
            message = _metric_message(self.spec, list(metrics))
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


def _code_version(folder: Path) -> str:
    """``advx <version>`` plus the git commit of ``folder``'s checkout (``-dirty`` when it has
    uncommitted changes): trials only compare within one code version."""
    import subprocess

    from advx import __version__

    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, text=True,
                             capture_output=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=folder, text=True, capture_output=True, timeout=10).stdout
        return f"advx {__version__} git {sha}{'-dirty' if dirty.strip() else ''}"
    except (OSError, subprocess.SubprocessError):
        return f"advx {__version__}"


def load_recipe_for(spec: SweepSpec, overrides: Sequence[str]) -> DictConfig:
    """The trial's recipe: the sweep's recipe + fixed overrides + the trial's values."""
    from advx.recipe import load_recipe

    return load_recipe(spec.recipe, [*spec.overrides, *overrides])


def _import_plugins(modules: Sequence[str]) -> list[Any]:
    plugins = []
    for name in modules:
        try:
            plugins.append(importlib.import_module(name))
        except ImportError as exc:
            raise ConfigError(f"plugins: cannot import {name!r}: {exc}") from exc
    return plugins


# --------------------------------------------------------------------------- workers


def _count_started(study: optuna.Study) -> int:
    states = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)
    return len(study.get_trials(deepcopy=False, states=states))


def _log_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in trial.params.items())
    value = f"{trial.value:.4g}" if trial.value is not None else "-"
    extra = trial.user_attrs.get("error", "") if trial.state == TrialState.FAIL else ""
    console.print(f"[bold]trial {trial.number}[/bold] {trial.state.name.lower()} value={value} "
                  f"{params} {extra}".rstrip())


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
                      f"with seed {new_seed}, not {seed}, so the two do not repeat each other")
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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
            if _count_started(study) >= n_trials:
                return ran
            study.optimize(objective, n_trials=1, catch=(TrialFailed,), callbacks=[_log_trial])
        ran += 1


def _worker_entry(spec_dict: dict[str, Any], storage_url: str, n_trials: int,
                  runs_root: str, index: int) -> None:
    """Entry of a spawned worker process (``--workers N``)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        work(SweepSpec.from_dict(spec_dict), storage_url, n_trials, Path(runs_root), index=index)
    except AdvxError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
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
    url = storage or spec.storage or default_storage_url(spec.name, runs_root)
    if registry is None:
        from advx.plugins import get_registry
        from advx.runner import run_plugins

        # The registry as a trial sees it: installed plugins plus the sweep's extra ones.
        with run_plugins([*_import_plugins(spec.plugins), *plugins]) as pm:
            registry = get_registry(pm)
    base = check_space(spec, registry)
    study = open_study(spec, make_storage(url), base_recipe=base)
    done = _count_started(study)
    console.print(f"sweep [bold]{spec.name}[/bold]: {done} trial(s) in {_safe_url(url)}, "
                  f"target {n_trials}, {workers} worker(s)")
    if workers == 1:
        work(spec, url, n_trials, runs_root, plugins)
    else:
        ctx = multiprocessing.get_context("spawn")
        procs = [
            ctx.Process(target=_worker_entry, name=f"advx-sweep-{i}",
                        args=(spec.to_dict(), url, n_trials, str(runs_root), i))
            for i in range(workers)
        ]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        failed = [p.exitcode for p in procs if p.exitcode]
        if failed:
            raise ConfigError(f"{len(failed)} of {workers} sweep workers stopped with an error "
                              f"(exit codes {failed}); see their messages above")
    study = optuna.load_study(study_name=spec.name, storage=make_storage(url))
    trials = study.get_trials(deepcopy=False)
    best = _best_trial(study)
    return SweepResult(spec.name, url, trials, best)


def _best_trial(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


# --------------------------------------------------------------------------- CLI


class _DefaultRunGroup(TyperGroup):
    """``advx sweep FILE ...`` means ``advx sweep run FILE ...`` (the issue's spelling)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


sweep_app = typer.Typer(
    cls=_DefaultRunGroup,
    no_args_is_help=True,
    add_completion=False,
    help="Optuna sweeps over recipe keys.\n\n"
    "advx sweep SWEEP_FILE [KEY=VALUE...] [--storage URL] [--workers N] [--n-trials N] "
    "runs or continues a sweep (short for `advx sweep run ...`); "
    "advx sweep show STUDY prints its trials, plots them and exports the best recipe.",
)


def _fail(exc: AdvxError) -> typer.Exit:
    console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
    return typer.Exit(exc.exit_code)


@sweep_app.command("run")
def run_command(
    sweep_file: Annotated[Path, typer.Argument(help="Sweep YAML, e.g. sweeps/alpha_beta.yaml.")],
    overrides: Annotated[list[str] | None, typer.Argument(
        help="Extra fixed key=value overrides for every trial, after the file's own "
        "(e.g. loop.rounds=2 for a quick look).", show_default=False)] = None,
    storage: Annotated[str | None, typer.Option(
        help="Optuna storage URL; default sqlite:///runs/sweeps/<name>.db. Point workers on "
        "many machines at one postgresql://user:pw@host/db to share the study.")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes on this machine.")] = 1,
    n_trials: Annotated[int | None, typer.Option(
        "--n-trials", help="Target number of trials in the study (default: the file's).")] = None,
    runs_root: Annotated[Path, typer.Option(help="Root folder of run directories.")] = RUNS,
) -> None:
    """Run (or continue) the sweep: trials until the study holds n_trials of them."""
    try:
        spec = load_sweep(sweep_file)
        if overrides:
            spec = dataclasses.replace(spec, overrides=[*spec.overrides, *overrides])
        result = run_sweep(spec, storage=storage, n_trials=n_trials, workers=workers,
                           runs_root=runs_root)
    except AdvxError as exc:
        raise _fail(exc) from None
    counts = {s.name.lower(): sum(t.state == s for t in result.trials) for s in TrialState}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    console.print(f"study [bold]{result.name}[/bold]: {summary or 'no trials'}")
    if result.best is not None:
        console.print(f"best: trial {result.best.number} {spec.objective.metric}="
                      f"{result.best.value:.4g} {result.best.params}")
    where = f" --storage {_safe_url(result.storage)}" if storage or spec.storage else ""
    console.print(f"inspect: advx sweep show {spec.name}{where}")


@sweep_app.command("show")
def show_command(
    study: Annotated[str, typer.Argument(help="Study name, or the sweep file that names it.")],
    storage: Annotated[str | None, typer.Option(
        help="Storage URL (default: the SQLite file runs/sweeps/<study>.db).")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Folder for the PNGs and best.yaml (default runs/sweeps/<study>/).")] = None,
    plots: Annotated[bool, typer.Option(help="Write the PNG plots.")] = True,
    contour: Annotated[str | None, typer.Option(
        help="Two comma-separated parameters for the contour plot (default: the first two "
        "of the space).")] = None,
    runs_root: Annotated[Path, typer.Option(help="Root folder of run directories.")] = RUNS,
) -> None:
    """Table of trials, best parameters, PNG plots and the best recipe as YAML."""
    from advx.sweep_report import show_study

    try:
        show_study(study, storage=storage, out=out, plots=plots, contour=contour,
                   runs_root=runs_root)
    except AdvxError as exc:
        raise _fail(exc) from None


if __name__ == "__main__":  # python -m advx.sweep ... (same as `advx sweep ...`)
    # Run the app of the imported module, not of __main__, so spawned workers and
    # advx.sweep_report see one set of classes.
    from advx.sweep import sweep_app as _app

    _app()

"""The sweep file: parsing and checking it into a :class:`SweepSpec`.

Every problem is a ConfigError naming the file and the key, raised before any trial starts.
Key names of the *recipe* (the search space's dotted keys) are not checked here but by
:func:`advx.sweep.space.check_space`, through the recipe validator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from advx.errors import ConfigError, did_you_mean
from advx.recipe import override, overrides_from, recipe_file

__all__ = [
    "PARAM_TYPES", "SWEEP_KEYS", "ObjectiveSpec", "ParamSpec", "SweepSpec", "load_sweep",
    "override",
]

SWEEP_KEYS = (
    "name", "description", "recipe", "overrides", "space", "objective", "sampler", "pruner",
    "n_trials", "storage", "plugins",
)
PARAM_TYPES = ("float", "int", "categorical")



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


def file_label(path: Path) -> str:
    """How messages name a sweep file."""
    return f"sweep file {path}"


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file; every problem is a ConfigError naming file and key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"sweep file {path} is not UTF-8 text (byte {exc.start}: "
                          f"{exc.reason}); save it as UTF-8 YAML") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"malformed YAML at {where}: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{file_label(path)} must be a YAML mapping (recipe:, space:, objective:)"
        )
    unknown = [k for k in raw if k not in SWEEP_KEYS]
    if unknown:
        hint = did_you_mean(unknown[0], SWEEP_KEYS)
        raise ConfigError(
            f"{file_label(path)}: unknown key {unknown[0]!r}.{hint} "
            f"Allowed keys: {', '.join(SWEEP_KEYS)}."
        )
    for key in ("recipe", "space", "objective"):
        if raw.get(key) in (None, "", {}):
            raise ConfigError(f"{file_label(path)}: {key}: required")

    recipe = recipe_file(str(raw["recipe"]), path, f"{file_label(path)}: recipe")
    spec = SweepSpec(
        name=str(raw.get("name") or path.stem),
        description=str(raw.get("description") or ""),
        recipe=recipe,
        overrides=overrides_from(raw.get("overrides"), f"{file_label(path)}: overrides"),
        space=_parse_space(raw["space"], path),
        objective=_parse_objective(raw["objective"], path),
        sampler=_parse_named(raw.get("sampler"), "sampler", "tpe", path),
        pruner=_parse_named(raw.get("pruner"), "pruner", "median", path),
        n_trials=_positive_int(raw.get("n_trials", 20), "n_trials", path),
        storage=str(raw["storage"]) if raw.get("storage") else None,
        plugins=_plugins(raw.get("plugins"), path),
        source=path.resolve(),
    )
    if spec.name in (".", "..") or not all(c.isalnum() or c in "-_." for c in spec.name):
        raise ConfigError(
            f"{file_label(path)}: name {spec.name!r} may only hold letters, digits, '-', '_', '.' "
            "and may not be '.' or '..' (it names the study, its SQLite file and its run folder)"
        )
    from advx.sweep.study import make_pruner, make_sampler

    make_sampler(spec)  # bad sampler/pruner names or kwargs fail here, not in a worker
    make_pruner(spec)
    return spec


def _parse_space(raw: Any, path: Path) -> dict[str, ParamSpec]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(
            f"{file_label(path)}: space: expected a mapping of dotted recipe keys to "
            "{type: float|int|categorical, ...}"
        )
    space = {}
    for key, entry in raw.items():
        at = f"{file_label(path)}: space.{key}"
        if not isinstance(entry, dict):
            raise ConfigError(
                f"{at}: expected a mapping such as {{type: float, low: 0, high: 1}}"
            )
        allowed = {f.name for f in dataclasses.fields(ParamSpec)}
        extra = sorted(set(entry) - allowed)
        if extra:
            raise ConfigError(f"{at}: unknown key {extra[0]!r}; allowed: {sorted(allowed)}")
        kind = entry.get("type")
        if kind not in PARAM_TYPES:
            raise ConfigError(f"{at}.type: expected one of {PARAM_TYPES}, got {kind!r}")
        param = ParamSpec(**entry)
        _check_param(param, at)
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
    if param.step is not None and (isinstance(param.step, bool) or not isinstance(
            param.step, (int, float)) or param.step <= 0):
        raise ConfigError(f"{where}.step: must be a number > 0, got {param.step!r}")


def _parse_objective(raw: Any, path: Path) -> ObjectiveSpec:
    if isinstance(raw, str):
        raw = {"metric": raw}
    if not isinstance(raw, dict) or not raw.get("metric"):
        raise ConfigError(
            f"{file_label(path)}: objective: expected {{metric: cold/pr_auc, direction: maximize}}"
        )
    extra = sorted(set(raw) - {"metric", "direction", "summary"})
    if extra:
        raise ConfigError(f"{file_label(path)}: objective: unknown key {extra[0]!r} "
                          "(allowed: metric, direction, summary)")
    objective = ObjectiveSpec(
        metric=str(raw["metric"]),
        direction=str(raw.get("direction", "maximize")),
        summary=str(raw.get("summary", "final")),
    )
    if objective.direction not in ("maximize", "minimize"):
        raise ConfigError(f"{file_label(path)}: objective.direction: expected maximize or "
                          f"minimize, got {objective.direction!r}")
    if objective.summary not in ("final", "best"):
        raise ConfigError(f"{file_label(path)}: objective.summary: expected final or best, "
                          f"got {objective.summary!r}")
    return objective


def _parse_named(raw: Any, what: str, default: str, path: Path) -> dict[str, Any]:
    if raw is None:
        return {"name": default}
    if isinstance(raw, str):
        return {"name": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("name", default), str):
        raise ConfigError(
            f"{file_label(path)}: {what}: expected {{name: ..., <kwargs>}}, got {raw!r}"
        )
    return {"name": default, **raw}


def _plugins(raw: Any, path: Path) -> list[str]:
    """``plugins: [module, ...]``; one name alone is a list of one (iterating the string gave
    one 'module' per character)."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list) or not all(isinstance(p, str) and p for p in raw):
        raise ConfigError(f"{file_label(path)}: plugins: expected a list of module names like "
                          f"[my_plugin_module], got {raw!r}")
    return list(raw)


def _positive_int(value: Any, key: str, path: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{file_label(path)}: {key}: expected a positive integer, got {value!r}")
    return value



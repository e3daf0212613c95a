"""The compare file: named conditions (a recipe plus overrides each) × seeds, and what to report.

    name: seqgan_oracle_cpu            # the study and folder name (default: the file's stem)
    description: MLE vs SeqGAN on the synthetic oracle, CPU scale
    conditions:                        # name -> {recipe, overrides}; names become folder names
      mle:    {recipe: recipes/mle_oracle.yaml}
      seqgan: {recipe: recipes/seqgan_oracle_cpu.yaml, overrides: [loop.rounds=20]}
    overrides: [loop.eval_every=5]     # applied to every condition first (list or mapping)
    seeds: 5                           # 0..4, or an explicit list [0, 1, 7]
    metrics: [oracle/nll, test/nll]    # what to report; eval:NAME/METRIC reads advx eval's
                                       # <cell>/evals/NAME.json (see advx.compare.report)
    primary: oracle/nll                # the metric of the curves and the per-round table
    per_round: [oracle/nll, test/nll]  # metrics tabled per round (default: [primary])
    baseline: mle                      # the condition every other one is paired against
    summary: final                     # which summary.json record gives a cell's value
    rounds: null                       # rounds of the per-round table (default: all)
    storage: null                      # default sqlite:///<runs-dir>/compare.db
    ledger: ledgers/seqgan_oracle_cpu  # optional: finished cells' numbers, to commit
                                       # (relative to this file; advx.compare.ledger)
    ledger_files: []                   # run-folder files the ledger keeps too (gzipped)
    plugins: []                        # extra plugin modules loaded into every cell
    shared_start:                      # optional: pre-train once per seed, then branch
      condition: mle                   #   that condition's recipe + overrides (or recipe: FILE)
      overrides: [generator.epochs=15] #   its own overrides on top
      round: 0                         #   the round every condition starts from (default 0)
    evaluations:                       # optional: re-evaluate every finished condition cell
      all-users: {round: final, overrides: [task.eval_users=0]}   # -> eval:all-users/METRIC

Everything is checked before any cell runs: every key (with a did-you-mean), every recipe
file, every condition's recipe with its overrides against the installed components (without
building a model), the baseline and the primary metric.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from advx.errors import ConfigError, did_you_mean
from advx.recipe import import_plugins, overrides_from, recipe_file

__all__ = ["COMPARE_KEYS", "START", "CompareSpec", "Condition", "Evaluation", "SharedStart",
           "check_conditions", "load_compare"]

COMPARE_KEYS = {
    "name": "the study and folder name (default: the file's stem)",
    "description": "one line saying what is compared",
    "conditions": "mapping name -> {recipe: FILE, overrides: [key=value, ...]}",
    "overrides": "overrides applied to every condition, before its own",
    "seeds": "a list of seeds, or N meaning 0..N-1",
    "metrics": "list of metric names to report",
    "primary": "the metric of the curves and per-round table (default: metrics[0])",
    "per_round": "metrics of `metrics` tabled per round, mean ± sd over seeds (default: "
                 "[primary]; e.g. a gate's open rate per round)",
    "baseline": "the condition the others are paired against (default: the first)",
    "summary": "final | best: which summary.json record gives a cell's value",
    "rounds": "list of rounds for the per-round table (default: every evaluated round)",
    "storage": "Optuna storage URL (default sqlite:///<runs-dir>/compare.db)",
    "plugins": "extra plugin modules imported into every cell",
    "ledger": "folder (relative to the compare file) where each finished cell's numbers are "
              "written as a small JSON file to commit: a fresh clone's `advx compare` runs "
              "only the cells it lacks and `show` reports from it",
    "ledger_files": "file names (globs) in a cell's run folder that the ledger keeps too, "
                    "gzipped, for analyses after the run folder is gone (e.g. "
                    "[adagrpo_samples.jsonl])",
    "shared_start": "{condition: NAME | recipe: FILE, overrides: [...], round: N}: pre-train "
                    "once per seed, every condition of that seed starts from its checkpoint",
    "tradeoff": "[QUALITY, DIVERSITY] metric names (e.g. [bleu2, self_bleu2]): a quality vs "
                "diversity table and tradeoff.png over their @t<temperature> variants",
    "evaluations": "mapping NAME -> {round: final | best | N, overrides: [key=value, ...]}: "
                   "each finished condition cell is re-evaluated (advx eval --name NAME), "
                   "read as eval:NAME/METRIC",
}
EVALUATION_KEYS = {
    "round": "the checkpoint: final (the newest, default), best (by loop.monitor) or a number",
    "overrides": "evaluation overrides (keys advx eval accepts, e.g. task.eval_users=0)",
}
SHARED_START_KEYS = {
    "condition": "pre-train with this condition's recipe and overrides",
    "recipe": "or: pre-train with this recipe file (plus the shared overrides)",
    "overrides": "key=value overrides of the start run, on top of the above",
    "round": "the start run's round every condition starts from (default 0)",
}
START = "_start"
"""The pseudo-condition of the start cells (a leading '_' cannot be a condition's name)."""
CONDITION_KEYS = {
    "recipe": "the recipe file (relative to the working directory or the compare file)",
    "overrides": "key=value overrides (a list, or a mapping {loop.rounds: 2})",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Condition:
    """One arm of the comparison: a recipe file and its overrides (the shared ones first)."""

    name: str
    recipe: str
    overrides: list[str] = field(default_factory=list)

    def cell_overrides(self, seed: int) -> list[str]:
        """A cell's overrides: the condition's, then the seed (which always wins)."""
        return [*self.overrides, f"seed={seed}"]


@dataclass(frozen=True)
class SharedStart:
    """The start cells' recipe: run once per seed for ``round`` rounds (pre-training plus
    round 0 when ``round`` is 0), checkpointed, then every condition of that seed runs with
    ``advx run --from <start run>:<round>``."""

    recipe: str
    overrides: list[str] = field(default_factory=list)
    round: int = 0

    def cell_overrides(self, seed: int) -> list[str]:
        """The start run stops at ``round`` and checkpoints it (the last round always is)."""
        return [*self.overrides, f"loop.rounds={self.round}", "loop.checkpoint=true",
                f"seed={seed}"]


@dataclass(frozen=True)
class Evaluation:
    """A re-evaluation of every finished condition cell: ``advx eval CELL --round ROUND
    --name NAME OVERRIDES``, run by the compare's workers (``advx.compare.cells``), so a study
    whose reported figures need a costlier evaluation than its rounds (all users instead of
    a subset) is still one resumable command."""

    name: str
    round: str | int = "final"
    overrides: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CompareSpec:
    name: str
    path: str
    conditions: dict[str, Condition]
    seeds: list[int]
    metrics: list[str]
    primary: str
    baseline: str
    description: str = ""
    summary: str = "final"
    rounds: list[int] | None = None
    storage: str | None = None
    plugins: list[str] = field(default_factory=list)
    shared_start: SharedStart | None = None
    tradeoff: tuple[str, str] | None = None
    evaluations: dict[str, Evaluation] = field(default_factory=dict)
    per_round: list[str] = field(default_factory=list)
    ledger: str | None = None
    """The ledger folder, absolute (``advx.compare.ledger``); None: no ledger."""
    ledger_files: list[str] = field(default_factory=list)

    @property
    def round_metrics(self) -> list[str]:
        """The metrics tabled per round: the primary first, then ``per_round``'s others."""
        return [self.primary, *(m for m in self.per_round if m != self.primary)]

    @property
    def cells(self) -> list[tuple[str, int]]:
        """Every (condition, seed), seed-major: a partial study has whole seeds first, so
        paired differences become available as early as possible."""
        return [(c, s) for s in self.seeds for c in self.conditions]

    @property
    def all_cells(self) -> list[tuple[str, int]]:
        """:attr:`cells` with each seed's start cell (``START``) before its conditions, so
        the start gets the lower trial number and is claimed first."""
        if self.shared_start is None:
            return self.cells
        return [(c, s) for s in self.seeds for c in (START, *self.conditions)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CompareSpec:
        values = dict(data)
        values["conditions"] = {k: Condition(**v) for k, v in values["conditions"].items()}
        if values.get("shared_start") is not None:
            values["shared_start"] = SharedStart(**values["shared_start"])
        values["evaluations"] = {k: Evaluation(**v)
                                 for k, v in (values.get("evaluations") or {}).items()}
        return cls(**values)


def load_compare(path: str | Path) -> CompareSpec:
    """Read and check a compare file (keys, types, files; not yet the recipes: see
    :func:`check_conditions`). One ConfigError naming the file and key per mistake."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        named = Path("compares") / f"{path}.yaml"
        if not path.suffix and named.is_file():
            path, where = named, str(named)
        else:
            raise ConfigError(f"compare file not found: {path} (see compares/*.yaml)")
    try:
        cfg = OmegaConf.load(path)
        raw = OmegaConf.to_container(cfg, resolve=True)
    except (OmegaConfBaseException, yaml.YAMLError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{where}: cannot read it as YAML: {first}") from exc
    if not isinstance(cfg, DictConfig) or not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of compare keys "
                          f"({', '.join(COMPARE_KEYS)})")
    for key in raw:
        if key not in COMPARE_KEYS:
            hint = did_you_mean(str(key), COMPARE_KEYS)
            raise ConfigError(f"{where}: unknown key {key!r}.{hint} Allowed: "
                              f"{', '.join(COMPARE_KEYS)}")

    name = raw.get("name") or path.stem
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}: name: {name!r} may only hold letters, digits, '-', '_' and "
                          "'.' (it names the study and its folder)")
    description = raw.get("description") or ""
    if not isinstance(description, str):
        raise ConfigError(f"{where}: description: expected one line of text, got {description!r}")

    shared = overrides_from(raw.get("overrides"), f"{where}: overrides")
    conditions = _conditions(raw.get("conditions"), shared, path, where)
    seeds = _seeds(raw.get("seeds"), where)
    metrics = _strings(raw.get("metrics"), f"{where}: metrics", "[oracle/nll, test/nll]")
    for metric in metrics:
        if metric.startswith(EVAL_PREFIX) and eval_metric(metric) is None:
            raise ConfigError(f"{where}: metrics: {metric!r}: expected 'eval:NAME/METRIC', the "
                              "metric METRIC of each cell's evals/NAME.json (advx eval --name "
                              "NAME), e.g. eval:users1000/test/hr@10")
    primary = raw.get("primary") or next((m for m in metrics
                                          if not m.startswith(EVAL_PREFIX)), metrics[0])
    if not isinstance(primary, str):
        raise ConfigError(f"{where}: primary: expected one metric name of metrics {metrics}, "
                          f"got {primary!r}")
    if primary.startswith(EVAL_PREFIX):
        raise ConfigError(f"{where}: primary: {primary!r} is a re-evaluation, written after "
                          "the cells ran; the primary must be a metric the runs log themselves "
                          "(it decides whether a cell succeeded). Name another metric")
    if primary not in metrics:
        raise ConfigError(f"{where}: primary: {primary!r} is not one of metrics "
                          f"{metrics}.{did_you_mean(str(primary), metrics)} Add it to metrics "
                          "or name one of them")
    baseline = raw.get("baseline") or next(iter(conditions))
    if not isinstance(baseline, str) or baseline not in conditions:
        raise ConfigError(f"{where}: baseline: {baseline!r} is not a condition "
                          f"({', '.join(conditions)}).{did_you_mean(str(baseline), conditions)}")
    summary = raw.get("summary") or "final"
    if summary not in ("final", "best"):
        raise ConfigError(f"{where}: summary: expected 'final' or 'best', got {summary!r}")
    rounds = raw.get("rounds")
    if rounds is not None and (not isinstance(rounds, list) or not all(
            isinstance(r, int) and not isinstance(r, bool) and r >= 0 for r in rounds)):
        raise ConfigError(f"{where}: rounds: expected a list of round numbers like [0, 5, 10], "
                          f"got {rounds!r}")
    storage = raw.get("storage")
    if storage is not None and not isinstance(storage, str):
        raise ConfigError(f"{where}: storage: expected a database URL, got {storage!r}")
    plugins = _strings(raw.get("plugins") or [], f"{where}: plugins", "[my_plugin_module]",
                       allow_empty=True)
    start = _shared_start(raw.get("shared_start"), conditions, shared, path, where)
    ledger = raw.get("ledger")
    if ledger is not None and (not isinstance(ledger, str) or not ledger.strip()):
        raise ConfigError(f"{where}: ledger: expected a folder path relative to the compare "
                          f"file (e.g. ledgers/{name}), got {ledger!r}")
    ledger_files = _strings(raw.get("ledger_files") or [], f"{where}: ledger_files",
                            "[adagrpo_samples.jsonl]", allow_empty=True)
    if ledger_files and ledger is None:
        raise ConfigError(f"{where}: ledger_files: needs a ledger folder to keep them in; add "
                          f"ledger: ledgers/{name}")
    for pattern in ledger_files:
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise ConfigError(f"{where}: ledger_files: {pattern!r}: expected a file name or "
                              "glob inside the run folder (e.g. adagrpo_samples.jsonl)")
    return CompareSpec(
        name=name, path=str(path.resolve()), conditions=conditions, seeds=seeds,
        metrics=metrics, primary=primary, baseline=baseline, description=description,
        summary=summary, rounds=rounds, storage=storage, plugins=plugins, shared_start=start,
        tradeoff=_tradeoff(raw.get("tradeoff"), metrics, where),
        evaluations=_evaluations(raw.get("evaluations"), where),
        per_round=_per_round(raw.get("per_round"), metrics, where),
        ledger=None if ledger is None else str((path.parent / ledger).resolve()),
        ledger_files=ledger_files,
    )


def _per_round(raw: Any, metrics: list[str], where: str) -> list[str]:
    """``per_round: [METRIC, ...]``: metrics the runs log every round (not ``eval:`` ones)."""
    if raw is None:
        return []
    names = _strings(raw, f"{where}: per_round", "[test/hr@10, adagrpo/gate_open_rate]")
    for name in names:
        if name.startswith(EVAL_PREFIX):
            raise ConfigError(f"{where}: per_round: {name!r} is a re-evaluation of one "
                              "checkpoint, not a per-round metric; name metrics the runs log")
        if name not in metrics:
            raise ConfigError(f"{where}: per_round: {name!r} is not one of metrics."
                              f"{did_you_mean(name, metrics)} Add it to metrics first")
    return names


TEMPERATURE_SUFFIX = "@t"  # a metric at sampling temperature τ is logged as NAME@t<τ>


def tradeoff_points(metric: str, metrics: Sequence[str]) -> dict[str, str]:
    """``{temperature label: metric name}`` of ``metric`` and its ``metric@t<τ>`` variants
    among ``metrics`` (the plain name is the recipe's own sampling temperature: "default")."""
    points = {"default": metric} if metric in metrics else {}
    for name in metrics:
        if name.startswith(metric + TEMPERATURE_SUFFIX):
            points[name.removeprefix(metric + TEMPERATURE_SUFFIX)] = name
    return points


def _tradeoff(raw: Any, metrics: list[str], where: str) -> tuple[str, str] | None:
    """``tradeoff: [QUALITY, DIVERSITY]``: both must have the same temperatures in metrics."""
    if raw is None:
        return None
    if not (isinstance(raw, list) and len(raw) == 2 and all(isinstance(m, str) for m in raw)):
        raise ConfigError(f"{where}: tradeoff: expected [QUALITY, DIVERSITY], two metric names "
                          f"like [bleu2, self_bleu2], got {raw!r}")
    quality, diversity = raw
    points = [tradeoff_points(m, metrics) for m in raw]
    for metric, found in zip(raw, points, strict=True):
        if len(found) < 2:
            raise ConfigError(
                f"{where}: tradeoff: {metric!r} needs at least two points in metrics: the "
                f"metric itself and/or {metric}{TEMPERATURE_SUFFIX}<temperature> variants "
                f"(found {sorted(found.values()) or 'none'}).{did_you_mean(metric, metrics)}")
    if set(points[0]) != set(points[1]):
        raise ConfigError(f"{where}: tradeoff: {quality!r} and {diversity!r} must be listed at "
                          f"the same temperatures; metrics have {sorted(points[0])} and "
                          f"{sorted(points[1])}")
    return quality, diversity


def _shared_start(raw: Any, conditions: dict[str, Condition], shared: list[str], path: Path,
                  where: str) -> SharedStart | None:
    """``shared_start: {condition: NAME | recipe: FILE, overrides: [...], round: N}``."""
    at = f"{where}: shared_start"
    if raw is None:
        return None
    example = "{condition: mle} or {recipe: recipes/mle_oracle.yaml, overrides: [...], round: 0}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{at}: expected a mapping like {example}, got {raw!r}")
    for key in raw:
        if key not in SHARED_START_KEYS:
            raise ConfigError(f"{at}: unknown key {key!r}."
                              f"{did_you_mean(str(key), SHARED_START_KEYS)} Allowed: "
                              f"{', '.join(SHARED_START_KEYS)}")
    if ("condition" in raw) == ("recipe" in raw):
        raise ConfigError(f"{at}: name exactly one of 'condition' (pre-train with that "
                          f"condition's recipe) and 'recipe' (a recipe file), e.g. {example}")
    round = raw.get("round", 0)
    if not isinstance(round, int) or isinstance(round, bool) or round < 0:
        raise ConfigError(f"{at}.round: expected a round number >= 0 (the start run's round "
                          f"every condition starts from), got {round!r}")
    own = overrides_from(raw.get("overrides"), f"{at}.overrides")
    if "condition" in raw:
        name = raw["condition"]
        if name not in conditions:
            raise ConfigError(f"{at}.condition: {name!r} is not a condition "
                              f"({', '.join(conditions)}).{did_you_mean(str(name), conditions)}")
        base = conditions[name]
        return SharedStart(recipe=base.recipe, overrides=[*base.overrides, *own], round=round)
    recipe = raw["recipe"]
    if not isinstance(recipe, str) or not recipe:
        raise ConfigError(f"{at}.recipe: expected a recipe file, got {recipe!r}")
    return SharedStart(recipe=str(recipe_file(recipe, path, f"{at}.recipe")),
                       overrides=[*shared, *own], round=round)


def _evaluations(raw: Any, where: str) -> dict[str, Evaluation]:
    """``evaluations: {NAME: {round: final | best | N, overrides: [...]}}``; every override
    must be one ``advx eval`` accepts (checked here, before any cell runs)."""
    from advx.use import eval_override_problem

    if raw is None:
        return {}
    example = "{all-users: {round: final, overrides: [task.eval_users=0]}}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: evaluations: expected a mapping like {example}, "
                          f"got {raw!r}")
    evaluations = {}
    for name, block in raw.items():
        at = f"{where}: evaluations.{name}"
        block = _named_block(name, {} if block is None else block, at, EVALUATION_KEYS,
                             "it names the file evals/NAME.json of each cell",
                             "{round: final, overrides: [...]}")
        round = block.get("round", "final")
        if not (round in ("final", "best") or (isinstance(round, int)
                                               and not isinstance(round, bool) and round >= 0)):
            raise ConfigError(f"{at}.round: expected final, best or a round number, "
                              f"got {round!r}")
        overrides = overrides_from(block.get("overrides"), f"{at}.overrides")
        for item in overrides:
            problem = eval_override_problem(item.split("=", 1)[0].strip().lstrip("+~"))
            if problem:
                raise ConfigError(f"{at}.overrides: {problem}")
        evaluations[name] = Evaluation(name=name, round=round, overrides=overrides)
    return evaluations


EVAL_PREFIX = "eval:"


def eval_metric(metric: str) -> tuple[str, str] | None:
    """``eval:NAME/METRIC`` -> (NAME, METRIC): the metric of ``advx eval --name NAME``'s
    record ``<cell>/evals/NAME.json``; None for an ordinary metric or a malformed name."""
    if not metric.startswith(EVAL_PREFIX):
        return None
    name, _, key = metric[len(EVAL_PREFIX):].partition("/")
    return (name, key) if name and key and not name.startswith(".") else None


def _named_block(name: Any, block: Any, at: str, allowed: Mapping[str, str], names: str,
                 example: str) -> dict[str, Any]:
    """One entry of a named mapping (``conditions``, ``evaluations``): a name that can be a
    file or folder name, and a mapping of known keys."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{at}: the name may only hold letters, digits, '-', '_' and '.' "
                          f"({names})")
    if not isinstance(block, dict):
        raise ConfigError(f"{at}: expected {example}, got {block!r}")
    for key in block:
        if key not in allowed:
            raise ConfigError(f"{at}: unknown key {key!r}.{did_you_mean(str(key), allowed)} "
                              f"Allowed: {', '.join(allowed)}")
    return block


def _conditions(raw: Any, shared: list[str], path: Path, where: str) -> dict[str, Condition]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: conditions: expected a mapping of at least two named "
                          "conditions, e.g. {mle: {recipe: recipes/mle_oracle.yaml}, "
                          "seqgan: {recipe: recipes/seqgan_oracle.yaml}}")
    if len(raw) < 2:
        raise ConfigError(f"{where}: conditions: a comparison needs at least two conditions, "
                          f"got only {next(iter(raw))!r}")
    conditions = {}
    for name, block in raw.items():
        at = f"{where}: conditions.{name}"
        block = _named_block(name, block, at, CONDITION_KEYS, "it names the cells' folders",
                             "{recipe: FILE, overrides: [...]}")
        recipe = block.get("recipe")
        if not isinstance(recipe, str) or not recipe:
            raise ConfigError(f"{at}.recipe: missing; name the condition's recipe file")
        conditions[name] = Condition(
            name=name, recipe=str(recipe_file(recipe, path, f"{at}.recipe")),
            overrides=[*shared, *overrides_from(block.get("overrides"), f"{at}.overrides")],
        )
    return conditions


def _seeds(raw: Any, where: str) -> list[int]:
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw < 2:
            raise ConfigError(f"{where}: seeds: a comparison needs at least 2 seeds, got {raw}")
        return list(range(raw))
    if isinstance(raw, (list, ListConfig)) and raw and all(
            isinstance(s, int) and not isinstance(s, bool) for s in raw):
        if len(set(raw)) != len(raw):
            raise ConfigError(f"{where}: seeds: {raw} repeats a seed; each seed is one cell")
        return list(raw)
    raise ConfigError(f"{where}: seeds: expected a list of integers [0, 1, 2] or a count N "
                      f"(meaning 0..N-1), got {raw!r}")


def _strings(raw: Any, at: str, example: str, allow_empty: bool = False) -> list[str]:
    if isinstance(raw, str):
        raw = [raw]
    if isinstance(raw, list) and (raw or allow_empty) and all(
            isinstance(s, str) and s for s in raw):
        return list(raw)
    raise ConfigError(f"{at}: expected a list of names like {example}, got {raw!r}")


def check_conditions(spec: CompareSpec, plugins: Sequence[Any] = ()) -> None:
    """Load and validate every condition's recipe with its overrides (and the first seed)
    against the installed components plus the file's plugins, without building anything."""
    from advx.runner import prepare_recipe, run_plugins

    extra = [*import_plugins(spec.plugins, f"{spec.path}: plugins"), *plugins]
    with run_plugins(extra) as pm:
        if spec.shared_start is not None:
            start = spec.shared_start
            try:
                prepare_recipe(start.recipe, start.cell_overrides(spec.seeds[0]), pm)
            except ConfigError as exc:
                raise ConfigError(f"{spec.path}: shared_start ({start.recipe}): {exc}") from exc
        for condition in spec.conditions.values():
            try:
                prepare_recipe(condition.recipe, condition.cell_overrides(spec.seeds[0]), pm)
            except ConfigError as exc:
                raise ConfigError(f"{spec.path}: conditions.{condition.name} "
                                  f"({condition.recipe}): {exc}") from exc

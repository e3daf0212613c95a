"""TensorBoard, MLflow and Weights & Biases loggers over the Logger protocol.

All three share :class:`_Tracker`, which turns the loop's records into what a tracker wants:

* ``kind: step`` records (one per improvement step): every numeric value (``reward/<term>``,
  ``optim/...``, ``rollout/length``) at x = the record's ``global_step``;
* ``kind: round`` records (round 0 is pre-training): every numeric value (``eval/...``,
  ``classify/...``, ``time/...``) at x = the round number, and the round's samples
  (``samples/round-<n>.jsonl``, which the loop writes before it logs the round) as a table;
* the resolved recipe (``recipe.yaml``, written before any component is built) as the run's
  parameters/config, and the run folder's path as a tag or config value.

Everything is read from the record and the documented run-folder files, so the loggers depend
on nothing but ``Logger.log(metrics, step)`` / ``close()`` and the run-folder layout.
The tracker libraries are imported when a logger is built (a missing one is a ConfigError
naming the extra to install) and a tracker run is started at the first record, so a run that
fails before logging anything leaves no empty tracker run behind.
"""

from __future__ import annotations

import abc
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from advx.components import BuildContext
from advx.errors import ConfigError
from advx.results import FINISHED_OK
from advx.rundir import jsonable

__all__ = [
    "MlflowLogger",
    "MlflowLoggerConfig",
    "TensorBoardLogger",
    "TensorBoardLoggerConfig",
    "WandbLogger",
    "WandbLoggerConfig",
    "flatten",
]

AXIS_KEYS = frozenset({"kind", "round", "step", "global_step", "evaluated"})
"""Record fields that locate a record (its x-axis), not metrics."""


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"loop": {"rounds": 4}, "loggers": [{"name": "csv"}]}`` →
    ``{"loop.rounds": 4, "loggers.0.name": "csv"}`` (MLflow parameters are flat)."""
    if isinstance(value, Mapping):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in items:
        out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    if not out and prefix:  # an empty block is still a parameter
        out[prefix] = "[]" if isinstance(value, (list, tuple)) else "{}"
    return out


def scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """The record's numeric metrics (bools and the axis fields left out)."""
    return {
        key: float(value)
        for key, value in record.items()
        if key not in AXIS_KEYS
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    }


def _require(module: str, logger: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"logger {logger!r} needs the {module.split('.')[0]} package ({exc}); install the "
            "trackers with `pip install 'advx[trackers]'`, or remove it from `loggers:`"
        ) from exc


class _Tracker(abc.ABC):
    """What the three trackers share: record dispatch, the recipe, the samples table."""

    name = "tracker"

    def __init__(self, samples: bool, max_samples: int, ctx: BuildContext) -> None:
        if max_samples < 0:
            raise ConfigError(
                f"loggers ({self.name}).max_samples must be >= 0 (0 = every sample), "
                f"got {max_samples}"
            )
        self.run_dir = Path(ctx.run_dir)
        self.want_samples = samples
        self.max_samples = max_samples
        self.started = False
        self.step_keys: set[str] = set()  # keys seen in step records (see log())

    # ------------------------------------------------------------- what subclasses write
    @abc.abstractmethod
    def _start(self, recipe: dict[str, Any]) -> None:
        """Written by each tracker."""

    @abc.abstractmethod
    def _log_step(self, metrics: dict[str, float], global_step: int) -> None:
        """Written by each tracker."""

    @abc.abstractmethod
    def _log_round(self, metrics: dict[str, float], round: int, global_step: int) -> None:
        """Written by each tracker."""

    @abc.abstractmethod
    def _log_samples(self, rows: list[dict[str, Any]], columns: list[str], round: int) -> None:
        """Written by each tracker."""

    @abc.abstractmethod
    def _finish(self, status: str) -> None:
        """Written by each tracker."""

    # ------------------------------------------------------------- the Logger protocol
    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        if not self.started:
            self._start(self.recipe())
            self.started = True
        values = scalars(metrics)
        if metrics.get("kind", "step") == "round":
            round = int(metrics.get("round", 0))
            # a round record repeats the step keys as the round's means; a tracker plots a
            # tag against one x-axis, so those go under round_mean/ (x = round)
            values = {(f"round_mean/{k}" if k in self.step_keys else k): v
                      for k, v in values.items()}
            self._log_round(values, round, step)
            if self.want_samples:
                rows, columns = self.samples(round)
                if rows:
                    self._log_samples(rows, columns, round)
        else:
            self.step_keys.update(values)
            self._log_step(values, step)

    def close(self) -> None:
        if self.started:
            self._finish(self.status())
            self.started = False

    # ------------------------------------------------------------- the run folder
    def recipe(self) -> dict[str, Any]:
        """The resolved recipe the run wrote to ``recipe.yaml`` ({} if there is none)."""
        path = self.run_dir / "recipe.yaml"
        if not path.is_file():
            return {}
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}

    def status(self) -> str:
        """``summary.json``'s status (``complete``, ``interrupted``), or ``unknown``."""
        path = self.run_dir / "summary.json"
        try:
            return str(json.loads(path.read_text(encoding="utf-8")).get("status", "unknown"))
        except (OSError, ValueError):
            return "unknown"

    def samples(self, round: int) -> tuple[list[dict[str, Any]], list[str]]:
        """Up to ``max_samples`` rows of ``samples/round-<n>.jsonl`` and their columns."""
        path = self.run_dir / "samples" / f"round-{round}.jsonl"
        if not path.is_file():
            return [], []
        rows: list[dict[str, Any]] = []
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    rows.append(json.loads(line))
                if self.max_samples and len(rows) >= self.max_samples:
                    break
        columns: dict[str, None] = {}
        for row in rows:
            columns.update(dict.fromkeys(row))
        return rows, list(columns)


# ============================================================================ TensorBoard


@dataclass
class TensorBoardLoggerConfig:
    """``loggers: [{name: tensorboard, ...}]``.

    Attributes:
        log_dir: event-file folder, relative to the run folder (``tensorboard/``).
        samples: write each round's samples as a text table (tag ``samples``).
        max_samples: rows of that table per round (0 = all).
        flush_secs: how often the writer flushes to disk.
    """

    log_dir: str = "tensorboard"
    samples: bool = True
    max_samples: int = 100
    flush_secs: int = 30


def _markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """TensorBoard's text plugin renders markdown; it has no table type of its own."""

    def cell(value: Any) -> str:
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


class TensorBoardLogger(_Tracker):
    """Scalars, the recipe and sample tables through ``torch.utils.tensorboard``."""

    name = "tensorboard"

    def __init__(self, config: TensorBoardLoggerConfig, ctx: BuildContext) -> None:
        super().__init__(config.samples, config.max_samples, ctx)
        _require("tensorboard", self.name)
        self.config = config
        self.log_dir = self.run_dir / config.log_dir
        self.writer: Any = None

    def _start(self, recipe: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.log_dir), flush_secs=self.config.flush_secs)
        text = yaml.safe_dump(recipe, sort_keys=False)
        # four-space indent: a markdown code block, so the YAML keeps its layout
        self.writer.add_text("recipe", "\n".join("    " + line for line in text.splitlines()))
        self.writer.add_text("run_dir", str(self.run_dir))

    def _log_step(self, metrics: dict[str, float], global_step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, global_step=global_step)

    def _log_round(self, metrics: dict[str, float], round: int, global_step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, global_step=round)
        self.writer.flush()

    def _log_samples(self, rows: list[dict[str, Any]], columns: list[str], round: int) -> None:
        self.writer.add_text("samples", _markdown_table(rows, columns), global_step=round)
        self.writer.flush()

    def _finish(self, status: str) -> None:
        self.writer.add_text("status", status)
        self.writer.close()


# ============================================================================ MLflow

_MLFLOW_BAD_CHARS = re.compile(r"[^\w\-. /:]")
_MLFLOW_MAX_PARAM = 6000  # MLflow's limit on a parameter value's length
_MLFLOW_BATCH = 100  # MLflow's limit on params (and tags) per log_batch call


def mlflow_key(key: str) -> str:
    """MLflow accepts letters, digits, ``_ - . / : `` and space in names; ``@`` (``hr@10``)
    and anything else becomes ``_``."""
    return _MLFLOW_BAD_CHARS.sub("_", key)


@dataclass
class MlflowLoggerConfig:
    """``loggers: [{name: mlflow, ...}]``.

    Attributes:
        tracking_uri: where to log. Empty (default): a local SQLite store under the run
            folder, ``sqlite:///<run>/mlflow/mlflow.db`` with artifacts in
            ``<run>/mlflow/artifacts/``. A server: ``http://host:5000``; any URI MLflow accepts.
        experiment: the experiment's name (created if absent); empty: the recipe's ``name``.
        run_name: the MLflow run's name; empty: ``<recipe name>/<run folder name>``.
        tags: extra tags on the MLflow run.
        samples: log each round's samples as a table artifact ``samples/round-<n>.json``.
        max_samples: rows of that table per round (0 = all).
    """

    tracking_uri: str = ""
    experiment: str = ""
    run_name: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    samples: bool = True
    max_samples: int = 1000


class MlflowLogger(_Tracker):
    """Parameters (the flattened recipe), metrics and sample tables through ``MlflowClient``.

    Uses the client rather than ``mlflow``'s fluent, process-global active run, so two runs in
    one process (a sweep) never write into each other. The MLflow run id is kept in
    ``<run>/mlflow/run_id``, so ``advx run --resume`` continues the same MLflow run.
    """

    name = "mlflow"

    def __init__(self, config: MlflowLoggerConfig, ctx: BuildContext) -> None:
        super().__init__(config.samples, config.max_samples, ctx)
        _require("mlflow", self.name)
        self.config = config
        self.local = not config.tracking_uri
        home = self.run_dir / "mlflow"
        self.tracking_uri = config.tracking_uri or f"sqlite:///{(home / 'mlflow.db').resolve()}"
        self.artifact_location = (home / "artifacts").resolve().as_uri() if self.local else None
        self.id_file = home / "run_id"
        self.client: Any = None
        self.run_id = ""

    def _experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=self.artifact_location)
        except MlflowException:  # created meanwhile by a parallel sweep worker
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def _start(self, recipe: dict[str, Any]) -> None:
        from mlflow.entities import Param, RunTag
        from mlflow.tracking import MlflowClient

        if self.local:
            self.id_file.parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        name = str(recipe.get("name") or self.run_dir.parent.name or "advx")
        previous = self.id_file.read_text().strip() if self.id_file.is_file() else ""
        logged: Mapping[str, str] = {}
        if previous:  # --resume: continue the MLflow run of this run folder
            self.run_id = previous
            self.client.update_run(previous, status="RUNNING")
            logged = self.client.get_run(previous).data.params
        else:
            tags = {
                "advx.run_dir": str(self.run_dir.resolve()),
                "advx.recipe": name,
                "mlflow.note.content": f"advx run folder: {self.run_dir.resolve()}",
                **self.config.tags,
            }
            run = self.client.create_run(
                self._experiment_id(self.config.experiment or name),
                run_name=self.config.run_name or f"{name}/{self.run_dir.name}",
                tags=tags,
            )
            self.run_id = run.info.run_id
            self.id_file.parent.mkdir(parents=True, exist_ok=True)
            self.id_file.write_text(self.run_id)
        # MLflow refuses to change a logged parameter: on resume only new keys are added
        params = [
            Param(mlflow_key(key), str(value)[:_MLFLOW_MAX_PARAM])
            for key, value in flatten(recipe).items()
            if mlflow_key(key) not in logged
        ]
        for start in range(0, len(params), _MLFLOW_BATCH):
            self.client.log_batch(self.run_id, params=params[start : start + _MLFLOW_BATCH])
        if previous:
            self.client.log_batch(self.run_id, tags=[RunTag("advx.resumed", "true")])
        self.client.log_text(self.run_id, yaml.safe_dump(recipe, sort_keys=False), "recipe.yaml")

    def _metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(mlflow_key(k), v, now, step) for k, v in metrics.items()]
        for start in range(0, len(batch), 1000):  # MLflow's limit on metrics per batch
            self.client.log_batch(self.run_id, metrics=batch[start : start + 1000])

    def _log_step(self, metrics: dict[str, float], global_step: int) -> None:
        self._metrics(metrics, global_step)

    def _log_round(self, metrics: dict[str, float], round: int, global_step: int) -> None:
        self._metrics(metrics, round)

    def _log_samples(self, rows: list[dict[str, Any]], columns: list[str], round: int) -> None:
        data = {c: [jsonable(row.get(c)) for row in rows] for c in columns}
        self.client.log_table(self.run_id, data=data, artifact_file=f"samples/round-{round}.json")

    def _finish(self, status: str) -> None:
        # MLflow's own run statuses: an interrupted run (Ctrl-C, SIGTERM) is KILLED, not FAILED
        mlflow_status = ("FINISHED" if status in FINISHED_OK
                         else "KILLED" if status == "interrupted" else "FAILED")
        self.client.set_terminated(self.run_id, status=mlflow_status)


# ============================================================================ W&B

_WANDB_MODES = ("offline", "online", "disabled")


@dataclass
class WandbLoggerConfig:
    """``loggers: [{name: wandb, ...}]``.

    Attributes:
        mode: ``offline`` (default: files only, no network, no account; upload later with
            ``wandb sync``), ``online`` (needs ``wandb login``) or ``disabled``.
        project: the W&B project.
        entity: the W&B team or user (empty: your default).
        dir: folder, relative to the run folder, under which wandb writes its ``wandb/`` tree.
        name: the W&B run's display name; empty: ``<recipe name>/<run folder name>``.
        group: W&B run group (e.g. a sweep's name); empty: none.
        tags: W&B run tags.
        samples: log each round's samples as a ``wandb.Table`` under ``samples``.
        max_samples: rows of that table per round (0 = all).
    """

    mode: str = "offline"
    project: str = "advx"
    entity: str = ""
    dir: str = "."
    name: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    samples: bool = True
    max_samples: int = 1000


class WandbLogger(_Tracker):
    """Config (the resolved recipe), history and sample tables through a ``wandb.Run``.

    Step metrics are plotted against ``global_step`` and round metrics against ``round``
    (``define_metric``), the way W&B keeps two x-axes in one run. The W&B run id is kept in
    ``<run>/wandb_run_id`` so ``advx run --resume`` continues the same W&B run.
    """

    name = "wandb"

    def __init__(self, config: WandbLoggerConfig, ctx: BuildContext) -> None:
        super().__init__(config.samples, config.max_samples, ctx)
        if config.mode not in _WANDB_MODES:
            raise ConfigError(
                f"loggers (wandb).mode must be one of {', '.join(_WANDB_MODES)}, "
                f"got {config.mode!r}"
            )
        self.wandb = _require("wandb", self.name)
        self.config = config
        self.id_file = self.run_dir / "wandb_run_id"
        self.run: Any = None
        self.axis: dict[str, str] = {}

    def _start(self, recipe: dict[str, Any]) -> None:
        wandb, cfg = self.wandb, self.config
        directory = self.run_dir / cfg.dir
        directory.mkdir(parents=True, exist_ok=True)
        name = str(recipe.get("name") or "advx")
        run_id = self.id_file.read_text().strip() if self.id_file.is_file() else None
        self.run = wandb.init(
            project=cfg.project,
            entity=cfg.entity or None,
            group=cfg.group or None,
            tags=list(cfg.tags) or None,
            name=cfg.name or f"{name}/{self.run_dir.name}",
            notes=f"advx run folder: {self.run_dir.resolve()}",
            dir=str(directory),
            mode=cfg.mode,
            id=run_id,
            resume="allow" if run_id else None,
            config={**recipe, "advx_run_dir": str(self.run_dir.resolve())},
            reinit="create_new",  # a sweep runs many trials in one process
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
        )
        self.id_file.write_text(self.run.id)
        self.run.define_metric("global_step")
        self.run.define_metric("round")

    def _define(self, metrics: dict[str, float], axis: str) -> None:
        for key in metrics:
            if key not in self.axis:
                self.axis[key] = axis
                self.run.define_metric(key, step_metric=axis)

    def _log_step(self, metrics: dict[str, float], global_step: int) -> None:
        self._define(metrics, "global_step")
        self.run.log({**metrics, "global_step": global_step})

    def _log_round(self, metrics: dict[str, float], round: int, global_step: int) -> None:
        self._define(metrics, "round")
        self.run.log({**metrics, "round": round})

    def _log_samples(self, rows: list[dict[str, Any]], columns: list[str], round: int) -> None:
        data = [[_table_cell(row.get(c)) for c in columns] for row in rows]
        table = self.wandb.Table(columns=columns, data=data)
        self.run.log({"samples": table, "round": round})

    def _finish(self, status: str) -> None:
        self.run.summary["advx/status"] = status
        self.run.finish(exit_code=0 if status in FINISHED_OK else 1)


def _table_cell(value: Any) -> Any:
    """A W&B table column holds one type: numbers stay numbers, the rest become text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return json.dumps(jsonable(value))

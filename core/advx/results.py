"""Read run folders back: one run's records, and many runs as one table.

    from advx.results import load_run, runs_table
    run = load_run("runs/seqgan_oracle_cpu/20260101-120000")
    run.status, run.curve("oracle/nll"), run.value("oracle/nll")
    runs_table([run, ...], ["oracle/nll", "rollout/length"])      # a pandas DataFrame

The folder format is the one :mod:`advx.rundir` writes: ``recipe.yaml``, ``metrics.jsonl``
(``"kind": "step"`` and ``"kind": "round"`` records), ``samples/round-<n>.jsonl`` and, once the
run ended, ``summary.json``. Reading is tolerant on purpose, because this module is also
used on runs that are still going (``advx compare show`` while cells run) and on folders
written by older or newer versions of the loop: a run without ``summary.json`` has status
``running``, an undecodable line of ``metrics.jsonl`` (a line cut by a crash, or being
written right now) is skipped with a warning, and unknown record kinds or keys are kept as
they are.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from advx.errors import ConfigError

__all__ = ["FINISHED_OK", "Run", "finite_number", "load_run", "runs_table"]

FINISHED_OK = ("complete", "done")
"""``summary.json`` statuses of a run that ended normally (``complete`` today; ``done`` in the
redesigned loop, which also writes ``failed`` and ``interrupted``)."""


@dataclass
class Run:
    """One run folder, read back.

    Attributes:
        path: the run folder.
        recipe: ``recipe.yaml`` as a dict (the resolved recipe the run used).
        rounds: the round records (``kind == "round"``) in file order; round 0 is pre-training.
        steps: the improvement-step records (``kind == "step"``).
        summary: ``summary.json``, or None while the run is still going (or was killed).
        samples: round -> path of ``samples/round-<n>.jsonl``.
    """

    path: Path
    recipe: dict[str, Any]
    rounds: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    samples: dict[int, Path] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.recipe.get("name") or self.path.parent.name)

    @property
    def seed(self) -> int | None:
        seed = self.recipe.get("seed")
        return int(seed) if isinstance(seed, int) else None

    @property
    def status(self) -> str:
        """``summary.json``'s status, or ``running`` when the run has not written one yet."""
        if self.summary is None:
            return "running"
        return str(self.summary.get("status") or "unknown")

    @property
    def finished_ok(self) -> bool:
        return self.status in FINISHED_OK

    def evaluated_rounds(self) -> list[dict[str, Any]]:
        """Round records that carry an evaluation (all of them, for a loop that does not say)."""
        evaluated = [r for r in self.rounds if r.get("evaluated", True)]
        return evaluated or list(self.rounds)

    def curve(self, metric: str) -> list[tuple[int, float]]:
        """``(round, value)`` for every round record holding a finite ``metric``."""
        points = []
        for record in self.rounds:
            value = finite_number(record.get(metric))
            if value is not None:
                points.append((int(record.get("round", 0)), value))
        return points

    def value(self, metric: str, which: str = "final") -> float | None:
        """The run's value of ``metric``: from ``summary.json``'s ``final`` or ``best`` record,
        or, with no summary yet, from the last round that logged it. None if never logged."""
        if which not in ("final", "best"):
            raise ConfigError(f"which: expected 'final' or 'best', got {which!r}")
        if self.summary is not None:
            record = self.summary.get(which) or {}
            return finite_number(record.get(metric))
        points = self.curve(metric)
        return points[-1][1] if points else None


def load_run(path: str | Path) -> Run:
    """Read the run folder ``path`` (see the module docstring for what is tolerated)."""
    path = Path(path)
    recipe_path = path / "recipe.yaml"
    if not recipe_path.is_file():
        raise ConfigError(
            f"{path} is not an advx run folder (no recipe.yaml); pass a folder "
            "runs/<recipe>/<timestamp>/ written by `advx run`"
        )
    recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8")) or {}
    run = Run(path=path, recipe=recipe if isinstance(recipe, dict) else {})
    for record in _read_records(path / "metrics.jsonl"):
        kind = record.get("kind")
        if kind == "round":
            run.rounds.append(record)
        elif kind == "step":
            run.steps.append(record)
    summary_path = path / "summary.json"
    if summary_path.is_file():
        try:
            run.summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:  # written atomically, so only a foreign edit
            warnings.warn(f"{summary_path}: not valid JSON ({exc}); treated as absent",
                          stacklevel=2)
    for sample in sorted((path / "samples").glob("round-*.jsonl")):
        suffix = sample.stem.removeprefix("round-")
        if suffix.isdigit():
            run.samples[int(suffix)] = sample
    return run


def _read_records(path: Path) -> Iterable[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            # The loop writes whole lines, so this is the line a crash cut (or one being
            # appended as we read); one bad line must not hide the rest of the run.
            warnings.warn(f"{path}:{number}: undecodable line skipped", stacklevel=3)
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def runs_table(runs: Sequence[Run], metrics: Sequence[str], which: str = "final") -> Any:
    """One row per run: ``path, name, seed, status`` and each metric's value (NaN when the
    run never logged it). ``which``: ``final`` or ``best`` record of ``summary.json``."""
    import pandas as pd

    rows = []
    for run in runs:
        row: dict[str, Any] = {"path": str(run.path), "name": run.name, "seed": run.seed,
                               "status": run.status}
        for metric in metrics:
            value = run.value(metric, which)
            row[metric] = math.nan if value is None else value
        rows.append(row)
    return pd.DataFrame(rows, columns=["path", "name", "seed", "status", *metrics])


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (not a bool), else None: how a metric
    read back from a record is told from NaN, null, text or absence (here and in
    :mod:`advx.compare`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None

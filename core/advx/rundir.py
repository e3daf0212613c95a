"""The run directory: everything a run writes, and what ``--resume`` reads back.

    runs/<recipe>/<timestamp>/
      recipe.yaml               the resolved recipe (interpolations resolved, defaults filled)
      metrics.jsonl             one JSON object per improvement step ("kind": "step") and
                                per round ("kind": "round"; round 0 is pre-training)
      samples/round-<n>.jsonl   generated texts of round n (augment and improvement phases)
      checkpoints/round-<n>/    generator, classifier, optimizer, reward (if it has state),
                                reference, RNG states and the synthetic pool: <part>.pt
      summary.json              final and best metrics, written when the run ends

Whole files are written atomically (a temporary file in the same folder, then
``os.replace``); a checkpoint is written into a temporary folder renamed into place, so a
``round-<n>`` folder always holds a complete checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import yaml

from advx.errors import ConfigError

__all__ = ["RunDir", "atomic_write_text", "jsonable"]

_CHECKPOINT_PREFIX = "round-"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def jsonable(value: Any) -> Any:
    """Plain JSON values: tensors/numpy scalars → float/int, NaN/inf → None."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
        return jsonable(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _dumps(record: Mapping[str, Any]) -> str:
    return json.dumps(jsonable(record), ensure_ascii=False, allow_nan=False)


class RunDir:
    """A run's folder and the reads and writes the loop needs."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # ---------------------------------------------------------------- creation
    @classmethod
    def create(cls, runs_root: Path, name: str) -> RunDir:
        """A fresh ``runs_root/<name>/<UTC timestamp>[-k]/``."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        base = Path(runs_root) / name
        base.mkdir(parents=True, exist_ok=True)
        for k in range(1000):
            path = base / (stamp if k == 0 else f"{stamp}-{k}")
            try:
                path.mkdir()
                return cls(path)
            except FileExistsError:
                continue
        raise ConfigError(f"cannot create a run directory under {base}")  # pragma: no cover

    @classmethod
    def at(cls, path: Path) -> RunDir:
        """Use ``path`` as the run directory (created if needed). One that already holds a
        run's records is refused; one left by a run that failed while building is reused."""
        path = Path(path)
        if (path / "metrics.jsonl").exists() or (path / "checkpoints").exists():
            raise ConfigError(
                f"{path} already holds a run; continue it with `advx run --resume {path}` "
                "or choose another --run-dir"
            )
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @classmethod
    def existing(cls, path: Path) -> RunDir:
        """An existing run directory (for ``--resume``); ConfigError if it is not one."""
        path = Path(path)
        if not (path / "recipe.yaml").is_file():
            raise ConfigError(
                f"{path} is not an advx run directory (no recipe.yaml); pass the folder "
                "runs/<recipe>/<timestamp>/ that an earlier `advx run` created"
            )
        return cls(path)

    # ---------------------------------------------------------------- paths
    @property
    def recipe_path(self) -> Path:
        return self.path / "recipe.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def samples_path(self, round: int) -> Path:
        return self.path / "samples" / f"round-{round}.jsonl"

    # ---------------------------------------------------------------- files
    def write_recipe(self, resolved: Mapping[str, Any]) -> None:
        text = yaml.safe_dump(jsonable(resolved), sort_keys=False, allow_unicode=True)
        atomic_write_text(self.recipe_path, text)

    def append_metrics(self, record: Mapping[str, Any]) -> None:
        """Append one JSON line (a line is written whole; resume drops incomplete rounds)."""
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(_dumps(record) + "\n")
            handle.flush()

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        records = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut by a crash: everything after is lost
                    break
        return records

    def truncate_metrics(self, last_round: int) -> list[dict[str, Any]]:
        """Keep only records of rounds ``<= last_round`` (resume drops a half-done round)."""
        kept = [r for r in self.read_metrics() if int(r.get("round", 0)) <= last_round]
        atomic_write_text(self.metrics_path, "".join(_dumps(r) + "\n" for r in kept))
        return kept

    def write_samples(self, round: int, rows: Iterable[Mapping[str, Any]]) -> None:
        text = "".join(_dumps(row) + "\n" for row in rows)
        atomic_write_text(self.samples_path(round), text)

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        atomic_write_text(self.summary_path, json.dumps(jsonable(summary), indent=2) + "\n")

    def read_summary(self) -> dict[str, Any]:
        return json.loads(self.summary_path.read_text(encoding="utf-8"))

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self, round: int, parts: Mapping[str, Any]) -> Path:
        """Write ``checkpoints/round-<round>/<part>.pt`` for each part, all or nothing."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        final = self.checkpoints / f"{_CHECKPOINT_PREFIX}{round}"
        tmp = Path(tempfile.mkdtemp(dir=self.checkpoints, prefix=f".{final.name}."))
        try:
            for part, state in parts.items():
                torch.save(state, tmp / f"{part}.pt")
            if final.exists():  # a rerun of the same round replaces its old checkpoint
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def checkpoint_rounds(self) -> list[int]:
        if not self.checkpoints.is_dir():
            return []
        rounds = []
        for child in self.checkpoints.iterdir():
            suffix = child.name.removeprefix(_CHECKPOINT_PREFIX)
            if child.is_dir() and child.name.startswith(_CHECKPOINT_PREFIX) and suffix.isdigit():
                rounds.append(int(suffix))
        return sorted(rounds)

    def last_checkpoint(self) -> int | None:
        rounds = self.checkpoint_rounds()
        return rounds[-1] if rounds else None

    def load_checkpoint(self, round: int) -> dict[str, Any]:
        """Every part of ``checkpoints/round-<round>/`` (pickled: only load your own runs)."""
        folder = self.checkpoints / f"{_CHECKPOINT_PREFIX}{round}"
        return {
            path.stem: torch.load(path, map_location="cpu", weights_only=False)
            for path in sorted(folder.glob("*.pt"))
        }

    def prune_checkpoints(self, keep: int) -> None:
        """Delete all but the newest ``keep`` checkpoints (``keep <= 0`` keeps all)."""
        if keep <= 0:
            return
        for round in self.checkpoint_rounds()[:-keep]:
            shutil.rmtree(self.checkpoints / f"{_CHECKPOINT_PREFIX}{round}", ignore_errors=True)

"""The run directory: everything a run writes, and what ``--resume`` reads back.

    runs/<recipe>/<timestamp>/
      recipe.yaml               the resolved recipe (interpolations resolved, defaults filled)
      metrics.jsonl             one JSON object per improvement step ("kind": "step") and
                                per round ("kind": "round"; round 0 is pre-training)
      samples/round-<n>.jsonl   generated texts of round n (augment and improvement phases)
      checkpoints/round-<n>/    generator, classifier, optimizer, reward (if it has state),
                                reference, RNG states and the synthetic pool: <part>.pt,
                                and complete.json (the parts' sizes), written last
      summary.json              status, final and best metrics, written when the run ends

Whole files are written atomically (a temporary file in the same folder, then
``os.replace``); a checkpoint is written into a temporary folder renamed into place, so a
``round-<n>`` folder normally holds a complete checkpoint; one that does not (copied by
hand, a disk fault) is detected by :meth:`RunDir.checkpoint_problem` and resume falls back
to the previous one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import torch
import yaml

from advx.errors import ConfigError

__all__ = ["RunDir", "atomic_write_text", "jsonable"]

_CHECKPOINT_PREFIX = "round-"
_COMPLETE = "complete.json"
"""Written last into a checkpoint folder: the parts and their sizes (see checkpoint_problem)."""
_RUN_MARKERS = ("metrics.jsonl", "checkpoints", "summary.json")
"""What only a run that started writes (a recipe.yaml alone may be the user's own file)."""


def _cannot_create(path: Path, exc: OSError, option: str) -> str:
    reason = exc.strerror or str(exc)
    return (f"cannot create the run folder {path}: {reason}. Choose a writable place with "
            f"{option}")


def _umask() -> int:
    """The process umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a run folder is shared
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def jsonable(value: Any) -> Any:
    """Plain JSON values: tensors/numpy scalars → float/int, enums → their value,
    NaN/inf → None."""
    if isinstance(value, Enum):  # a config's choice: its value, as recipe.yaml spells it
        return jsonable(value.value)
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

    def __init__(self, path: Path, created: bool = False) -> None:
        self.path = Path(path)
        self.created = created  # advx made this folder (discard() may remove it)
        self.read_only = False
        """A data-parallel run's non-main ranks see the run folder read-only: every write
        below is skipped there (advx.distributed), the main process writes alone."""

    # ---------------------------------------------------------------- creation
    @classmethod
    def create(cls, runs_root: Path, name: str) -> RunDir:
        """A fresh ``runs_root/<name>/<UTC timestamp>[-k]/``."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        base = Path(runs_root) / name
        try:
            base.mkdir(parents=True, exist_ok=True)
            for k in range(1000):
                path = base / (stamp if k == 0 else f"{stamp}-{k}")
                try:
                    path.mkdir()
                    return cls(path, created=True)
                except FileExistsError:
                    continue
        except OSError as exc:
            raise ConfigError(_cannot_create(base, exc, "--runs-root")) from exc
        raise ConfigError(f"cannot create a run directory under {base}")  # pragma: no cover

    @classmethod
    def at(cls, path: Path) -> RunDir:
        """Use ``path`` as the run directory: a new or empty folder. A folder with a run in
        it is refused (resume it instead), and so is any other non-empty folder: advx never
        writes over files it did not create."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--run-dir {path} is a file, not a folder; give a new or empty "
                              "folder")
        if path.is_dir() and any(path.iterdir()):
            if any((path / name).exists() for name in _RUN_MARKERS):
                raise ConfigError(
                    f"{path} already holds a run; continue it with "
                    f"`advx run --resume {path}` or choose another --run-dir"
                )
            raise ConfigError(
                f"--run-dir {path} is a non-empty folder that is not an advx run; advx refuses "
                "to write into it (it would overwrite your files). Give a new or empty folder"
            )
        created = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(_cannot_create(path, exc, "--run-dir")) from exc
        return cls(path, created=created)

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

    def discard(self) -> None:
        """Remove what this run wrote, for a run that failed before it started (a component
        rejected at build time): a folder advx created goes, a given empty one is emptied."""
        if self.read_only:
            return
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)
        elif self.path.is_dir():
            for child in self.path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)

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
        if self.read_only:
            return
        text = yaml.safe_dump(jsonable(resolved), sort_keys=False, allow_unicode=True)
        atomic_write_text(self.recipe_path, text)

    def append_metrics(self, record: Mapping[str, Any]) -> None:
        """Append one JSON line (a line is written whole; resume drops incomplete rounds)."""
        if self.read_only:
            return
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(_dumps(record) + "\n")
            handle.flush()

    def scan_metrics(self) -> tuple[list[tuple[int, dict[str, Any] | None, str]], int]:
        """Every line of metrics.jsonl as (line number, record or None if undecodable, text)."""
        if not self.metrics_path.exists():
            return [], 0
        raw = self.metrics_path.read_bytes().decode("utf-8", errors="replace")
        rows: list[tuple[int, dict[str, Any] | None, str]] = []
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            rows.append((number, record if isinstance(record, dict) else None, line))
        return rows, len(rows)

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every decodable record; an undecodable line (cut by a crash) is skipped, never
        the valid records after it."""
        return [record for _, record, _ in self.scan_metrics()[0] if record is not None]

    def truncate_metrics(self, last_round: int) -> tuple[list[dict[str, Any]], list[str]]:
        """Drop the records of rounds after ``last_round`` (resume redoes them); return the
        kept records and a warning per undecodable line.

        No valid record of a kept round is dropped. An undecodable line after the last kept
        record belongs to a round being redone and is dropped; one between kept records is
        left in place (it may be the only copy of something) and reported.
        """
        rows, _ = self.scan_metrics()
        kept_at = [i for i, (_, r, _) in enumerate(rows)
                   if r is not None and int(r.get("round", 0)) <= last_round]
        end = kept_at[-1] + 1 if kept_at else 0
        lines: list[str] = []
        kept: list[dict[str, Any]] = []
        notes: list[str] = []
        for index, (number, record, text) in enumerate(rows):
            if record is None:
                if index < end:
                    lines.append(text)
                    notes.append(f"metrics.jsonl line {number} is not valid JSON; left in "
                                 "place and skipped when reading")
                else:
                    notes.append(f"metrics.jsonl line {number} is not valid JSON (cut by a "
                                 f"crash?) and lies after the checkpoint of round "
                                 f"{last_round}; dropped")
            elif int(record.get("round", 0)) <= last_round:
                lines.append(text)
                kept.append(record)
        if not self.read_only:
            atomic_write_text(self.metrics_path, "".join(line + "\n" for line in lines))
        return kept, notes

    def write_samples(self, round: int, rows: Iterable[Mapping[str, Any]]) -> None:
        if self.read_only:
            return
        text = "".join(_dumps(row) + "\n" for row in rows)
        atomic_write_text(self.samples_path(round), text)

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        if self.read_only:
            return
        atomic_write_text(self.summary_path, json.dumps(jsonable(summary), indent=2) + "\n")

    def read_summary(self) -> dict[str, Any]:
        return json.loads(self.summary_path.read_text(encoding="utf-8"))

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self, round: int, parts: Mapping[str, Any]) -> Path:
        """Write ``checkpoints/round-<round>/<part>.pt`` for each part, all or nothing: into a
        temporary folder, then ``complete.json`` (the parts and their sizes), then a rename."""
        if self.read_only:
            return self.checkpoints / f"{_CHECKPOINT_PREFIX}{round}"
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        final = self.checkpoints / f"{_CHECKPOINT_PREFIX}{round}"
        tmp = Path(tempfile.mkdtemp(dir=self.checkpoints, prefix=f".{final.name}."))
        try:
            sizes = {}
            for part, state in parts.items():
                torch.save(state, tmp / f"{part}.pt")
                sizes[part] = (tmp / f"{part}.pt").stat().st_size
            marker = json.dumps({"round": round, "parts": sizes})
            atomic_write_text(tmp / _COMPLETE, marker)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        # A rerun of the same round replaces its old checkpoint: moved aside (a rename), not
        # deleted before the new one is in place, so a failure here keeps the old one.
        old = None
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        try:
            os.replace(tmp, final)
        except BaseException:
            if old is not None and not final.exists():
                os.replace(old, final)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def checkpoint_rounds(self) -> list[int]:
        """Rounds with a ``round-<n>`` folder, complete or not (see checkpoint_problem)."""
        if not self.checkpoints.is_dir():
            return []
        rounds = []
        for child in self.checkpoints.iterdir():
            suffix = child.name.removeprefix(_CHECKPOINT_PREFIX)
            if child.is_dir() and child.name.startswith(_CHECKPOINT_PREFIX) and suffix.isdigit():
                rounds.append(int(suffix))
        return sorted(rounds)

    def checkpoint_problem(self, round: int) -> str | None:
        """Why ``round-<round>`` is not a complete checkpoint, or None when it is.

        Complete means: ``complete.json`` is there and every part it lists has its size.
        A folder from before the marker existed counts if it has ``loop.pt`` and ``rng.pt``.
        """
        folder = self.checkpoints / f"{_CHECKPOINT_PREFIX}{round}"
        marker = folder / _COMPLETE
        if not marker.is_file():
            missing = [f"{p}.pt" for p in ("loop", "rng") if not (folder / f"{p}.pt").is_file()]
            return f"no {_COMPLETE} and missing {', '.join(missing)}" if missing else None
        try:
            sizes = json.loads(marker.read_text(encoding="utf-8"))["parts"]
        except (ValueError, KeyError, TypeError, OSError):
            return f"{_COMPLETE} is unreadable"
        for part, size in sizes.items():
            path = folder / f"{part}.pt"
            if not path.is_file():
                return f"{part}.pt is missing"
            if path.stat().st_size != size:
                return f"{part}.pt has {path.stat().st_size} bytes, {size} were written"
        return None

    def last_checkpoint(self) -> int | None:
        """The newest complete checkpoint's round."""
        rounds = [r for r in self.checkpoint_rounds() if self.checkpoint_problem(r) is None]
        return rounds[-1] if rounds else None

    def load_checkpoint(self, round: int) -> dict[str, Any]:
        """Every part of ``checkpoints/round-<round>/`` (pickled: only load your own runs)."""
        folder = self.checkpoints / f"{_CHECKPOINT_PREFIX}{round}"
        return {
            path.stem: torch.load(path, map_location="cpu", weights_only=False)
            for path in sorted(folder.glob("*.pt"))
        }

    def prune_checkpoints(self, keep: int, protect: Iterable[int] = ()) -> None:
        """Delete all but the newest ``keep`` checkpoints and those in ``protect`` (the best
        by the monitor); ``keep <= 0`` keeps all."""
        if keep <= 0 or self.read_only:
            return
        spared = set(protect)
        for round in self.checkpoint_rounds()[:-keep]:
            if round not in spared:
                shutil.rmtree(self.checkpoints / f"{_CHECKPOINT_PREFIX}{round}",
                              ignore_errors=True)

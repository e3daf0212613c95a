"""A study's ledger: each finished cell's numbers as one small JSON file, in a folder you commit.

Why: a study's ``runs/compares/<name>/`` (run folders, checkpoints, the SQLite storage) lives on
one machine, and a study of days of CPU outlives the machine it started on. The ledger keeps
what ``advx compare show`` needs of a done cell and nothing more, tens of kB each::

    <ledger>/study.json                      the conditions' recorded definitions (the guard)
    <ledger>/<condition>/seed-<S>.json       a done cell: its trial record (metrics, per-round
                                             values, wall time, where it ran), its summary.json
                                             records and its evals/*.json
    <ledger>/_start/seed-<S>.json            a done shared start, the same way
    <ledger>/<condition>/seed-<S>.files/F.gz the run-folder files ``ledger_files`` names
                                             (e.g. per-sample records for a later analysis)

``advx compare`` writes a cell's entry when it records the cell done (and, at its end, any a
done cell lacks, e.g. of cells finished before the key was set), and before it runs anything
imports the entries its storage lacks as finished trials marked ``ledger``: a study continued
on a fresh clone runs only the cells the ledger does not hold. A shared start is imported only
when every condition of its seed is (its checkpoint is gone with its machine); otherwise it runs
again, and if the rebuilt start's logged values differ from the recorded ones (another CPU,
another library version) the start is marked ``ledger_differs`` and a warning says so: that
seed's remaining cells then branch from a start that is not the one its finished cells had
(still paired by seed, with more variance; ``show`` names such seeds from the cells'
``start_id``, and ``advx compare --redo`` runs the older cells again, after which the rebuilt
start's entry replaces the recorded one). ``show`` reads an entry where the run folder is gone.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from advx.compare.spec import START, CompareSpec

__all__ = ["LEDGER_ATTR", "cell_file", "entry_path", "missing", "open_text",
           "read_entry", "read_study", "record", "trials", "write_entry", "write_study"]

LEDGER_ATTR = "ledger"
"""The user attribute of a trial imported from a ledger: the entry's path."""


def entry_path(spec: CompareSpec, condition: str, seed: int) -> Path:
    assert spec.ledger is not None
    return Path(spec.ledger) / condition / f"seed-{seed}.json"


def read_entry(path: str | Path) -> dict[str, Any] | None:
    """An entry, or None when absent or unreadable (a half-copied file is not a result)."""
    entry = _json(Path(path))
    return entry if entry is not None and "user_attrs" in entry else None


@functools.lru_cache(maxsize=512)
def _cached_entry(path: str, mtime_ns: int) -> dict[str, Any] | None:
    """:func:`read_entry` once per file version: a report looks up every metric of every
    cell in its entry (hundreds of reads of the same tens-of-kB file otherwise)."""
    return read_entry(path)


def write_entry(spec: CompareSpec, trial: FrozenTrial) -> bool:
    """Write (or refresh) the entry of a done cell from its trial and run folder; returns
    whether the file changed. A cell imported from the ledger, or whose run folder is gone,
    is left as recorded."""
    from advx.rundir import atomic_write_text, jsonable

    attrs = dict(trial.user_attrs)
    attrs.pop("ledger_differs", None)  # written only once its seed's cells all branched from it
    run_dir = Path(str(attrs.get("run_dir") or ""))
    if spec.ledger is None or LEDGER_ATTR in attrs or not run_dir.is_dir():
        return False
    condition, seed = str(attrs["condition"]), int(attrs["seed"])
    entry = {
        "condition": condition, "seed": seed, "value": trial.value,
        "user_attrs": attrs, "summary": _json(run_dir / "summary.json") or {},
        "evals": {p.stem: record for p in sorted((run_dir / "evals").glob("*.json"))
                  if (record := _json(p)) is not None},
    }
    path = entry_path(spec, condition, seed)
    entry["files"] = _keep_files(spec, run_dir, path.with_suffix(".files"))
    old = read_entry(path)
    if old is not None and {k: v for k, v in old.items() if k != "written"} == jsonable(entry):
        return False
    entry["written"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    atomic_write_text(path, json.dumps(jsonable(entry), indent=1, sort_keys=True) + "\n")
    return True


def _keep_files(spec: CompareSpec, run_dir: Path, folder: Path) -> dict[str, str]:
    """Gzip the run-folder files ``ledger_files`` names into ``folder`` (unchanged ones are
    not rewritten); returns {relative name: sha256 of the original}. The gzip header carries
    no name or time, so the same file always gives the same bytes (a quiet ``git diff``)."""
    import gzip
    import hashlib
    import os
    import tempfile

    kept: dict[str, str] = {}
    for pattern in spec.ledger_files:
        for source in sorted(run_dir.glob(pattern)):
            if not source.is_file():
                continue
            name = source.relative_to(run_dir).as_posix()
            data = source.read_bytes()
            kept[name] = hashlib.sha256(data).hexdigest()
            target = folder / f"{name}.gz"
            if target.is_file() and _gunzip_sha(target) == kept[name]:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb",
                                                           filename="", mtime=0) as packed:
                packed.write(data)
            os.replace(tmp, target)
    return kept


def _gunzip_sha(path: Path) -> str | None:
    import gzip
    import hashlib

    try:
        with gzip.open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except (OSError, EOFError):
        return None


def cell_file(trial: FrozenTrial | None, name: str) -> Path | None:
    """Where a done cell's run-folder file ``name`` can be read: in its run folder when that
    is here, else the ledger's gzipped copy (``ledger_files``); None when neither exists.
    Read the result with :func:`open_text`."""
    if trial is None:
        return None
    here = Path(str(trial.user_attrs.get("run_dir") or "")) / name
    if trial.user_attrs.get("run_dir") and here.is_file():
        return here
    entry = trial.user_attrs.get(LEDGER_ATTR)
    copy = Path(str(entry)).with_suffix(".files") / f"{name}.gz" if entry else None
    return copy if copy is not None and copy.is_file() else None


def open_text(path: Path) -> str:
    """The text of a file :func:`cell_file` found, gzipped or not."""
    import gzip

    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return handle.read()
    return path.read_text(encoding="utf-8")


def _json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def trials(spec: CompareSpec) -> list[FrozenTrial]:
    """Every entry of the ledger as a finished trial (not stored anywhere): ``user_attrs``
    as recorded plus ``ledger`` = the entry's path. Entries of cells no longer in the
    compare file are left out; a shared start only when all its seed's conditions have
    entries (see the module docstring)."""
    if spec.ledger is None:
        return []
    found = []
    wanted = set(spec.all_cells)
    for path in sorted(Path(spec.ledger).glob("*/seed-*.json")):
        entry = read_entry(path)
        if entry is None or (entry.get("condition"), entry.get("seed")) not in wanted:
            continue
        found.append((entry, path))
    have = {(e["condition"], e["seed"]) for e, _ in found}
    made = []
    for entry, path in found:
        if entry["condition"] == START and not all(
                (c, entry["seed"]) in have for c in spec.conditions):
            continue
        value, now = entry.get("value"), datetime.now()
        # built directly: optuna.trial.create_trial refuses a finished trial without a value,
        # which a start cell is (it is not a result)
        made.append(FrozenTrial(
            number=-1, trial_id=-1, state=TrialState.COMPLETE,
            value=None if value is None else float(value), datetime_start=now,
            datetime_complete=now, params={}, distributions={}, system_attrs={},
            user_attrs={**entry["user_attrs"], LEDGER_ATTR: str(path)}, intermediate_values={}))
    return made


def record(trial: FrozenTrial | None, evaluation: str | None, which: str
           ) -> dict[str, Any] | None:
    """The ledger's copy of a cell's ``evals/<evaluation>.json`` metrics or (None) of its
    summary.json ``which`` record; None when the cell was not imported from a ledger."""
    path = trial.user_attrs.get(LEDGER_ATTR) if trial is not None else None
    try:
        entry = _cached_entry(str(path), Path(str(path)).stat().st_mtime_ns) if path else None
    except OSError:
        entry = None
    if entry is None:
        return None
    if evaluation is None:
        found = (entry.get("summary") or {}).get(which)
    else:
        found = ((entry.get("evals") or {}).get(evaluation) or {}).get("metrics")
    return found if isinstance(found, dict) else {}


def read_study(spec: CompareSpec) -> dict[str, Any]:
    """The conditions' definitions the ledger recorded ({} when none)."""
    if spec.ledger is None:
        return {}
    return (_json(Path(spec.ledger) / "study.json") or {}).get("conditions") or {}


def write_study(spec: CompareSpec, conditions: dict[str, Any]) -> None:
    """Record the conditions' definitions beside the entries, so the guard against an
    edited condition also holds on a machine whose storage starts empty."""
    from advx.rundir import atomic_write_text, jsonable

    if spec.ledger is None or read_study(spec) == jsonable(conditions):
        return
    atomic_write_text(Path(spec.ledger) / "study.json",
                      json.dumps(jsonable({"name": spec.name, "conditions": conditions}),
                                 indent=1, sort_keys=True) + "\n")


def missing(stored: Iterable[FrozenTrial], spec: CompareSpec) -> list[FrozenTrial]:
    """The ledger's trials of cells that have no finished trial in ``stored``."""
    done = {(t.user_attrs.get("condition"), t.user_attrs.get("seed")) for t in stored
            if t.state == TrialState.COMPLETE and not t.user_attrs.get("superseded")}
    return [t for t in trials(spec)
            if (t.user_attrs.get("condition"), t.user_attrs.get("seed")) not in done]

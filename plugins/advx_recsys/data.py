"""Reading interaction data and the leave-one-out split.

Two input formats, both reduced to ``{user: [item, item, ...]}`` in time order:

* sequences: one user a line, ``user item1 item2 ...`` (the S3-Rec / TIGER Amazon files);
* interaction tables (CSV/TSV/``::``-separated/Parquet) with user, item and timestamp columns
  named by the recipe (``user_column``, ``item_column``, ``time_column``), e.g. MovieLens
  ``ratings.dat`` with ``sep: "::"`` and ``names: userId,movieId,rating,timestamp``.

Leave-one-out split per user ``s = [s_0 … s_{n-1}]``: test target ``s_{n-1}`` (history
``s[:n-1]``), validation target ``s_{n-2}`` (history ``s[:n-2]``), training targets
``s_1 … s_{n-3}`` (each with its prefix as history). A user therefore needs at least 3 items.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from advx.errors import DataError

__all__ = ["Example", "Split", "leave_one_out", "read_sequences", "read_table"]

MIN_ITEMS = 3


@dataclass(frozen=True)
class Example:
    """One next-item prediction: the user's ``history`` (oldest first) and the ``target``."""

    user: str
    history: tuple[str, ...]
    target: str
    split: str


@dataclass
class Split:
    train: list[Example]
    valid: list[Example]
    test: list[Example]


def read_sequences(path: Path) -> dict[str, list[str]]:
    """``user item1 item2 ...`` per line; item ids must be positive integers."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"task.path: no such file {str(path)!r} (expected `user item1 item2 ...`)")
    users: dict[str, list[str]] = {}
    with path.open() as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            user, items = fields[0], fields[1:]
            for item in items:
                if not item.isdigit() or int(item) <= 0:
                    raise DataError(
                        f"{path}:{lineno}: item id {item!r} of user {user!r} is not a positive "
                        f"integer; each line must be `user item1 item2 ...` with integer item ids."
                    )
            if user in users:
                raise DataError(f"{path}:{lineno}: user {user!r} appears on two lines")
            users[user] = items
    if not users:
        raise DataError(f"{path}: the file is empty (expected one `user item1 item2 ...` a line)")
    return users


def read_table(
    path: Path, user_column: str, item_column: str, time_column: str,
    sep: str = "", names: str = "",
) -> dict[str, list[str]]:
    """Interaction rows grouped by user and sorted by timestamp (ties keep file order)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"task.path: no such file {str(path)!r}")
    header = [n.strip() for n in names.split(",")] if names else None
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            delimiter = sep or ("\t" if path.suffix in {".tsv", ".dat"} else ",")
            frame = pd.read_csv(
                path, sep=delimiter, names=header, header=None if header else "infer",
                engine="python" if len(delimiter) > 1 else "c", dtype=str,
            )
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty (expected an interaction table)") from exc
    missing = [c for c in (user_column, item_column, time_column) if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: column(s) {missing} not found; columns are {list(frame.columns)}. Set "
            f"task.user_column / item_column / time_column (and task.names for headerless files)."
        )
    if frame.empty:
        raise DataError(f"{path}: the table has a header but no rows")
    frame = frame[[user_column, item_column, time_column]].copy()
    bad = frame[item_column].isna() | (frame[item_column].astype(str).str.strip() == "")
    if bad.any():
        row = int(bad.idxmax()) + 2
        raise DataError(f"{path}: row {row}: empty item id in column {item_column!r}")
    time = pd.to_numeric(frame[time_column], errors="coerce")
    if time.isna().any():
        row = int(time.isna().idxmax()) + 2
        raise DataError(
            f"{path}: row {row}: timestamp {frame[time_column].iloc[row - 2]!r} in column "
            f"{time_column!r} is not a number"
        )
    frame["_t"] = time
    frame = frame.sort_values([user_column, "_t"], kind="stable")
    return {
        str(user): group[item_column].astype(str).tolist()
        for user, group in frame.groupby(user_column, sort=False)
    }


def leave_one_out(sequences: dict[str, list[str]], drop_short: bool = False) -> Split:
    """Last item → test, second-last → validation, every earlier position ≥ 1 → train."""
    split = Split([], [], [])
    short = [u for u, items in sequences.items() if len(items) < MIN_ITEMS]
    if short and not drop_short:
        raise DataError(
            f"{len(short)} user(s) have fewer than {MIN_ITEMS} items (e.g. user {short[0]!r} "
            f"with {len(sequences[short[0]])}); leave-one-out needs a training, a validation "
            f"and a test item. Remove them, or set task.drop_short: true to skip them."
        )
    for user, items in sequences.items():
        if len(items) < MIN_ITEMS:
            continue
        n = len(items)
        for t in range(1, n - 2):
            split.train.append(Example(user, tuple(items[:t]), items[t], "train"))
        split.valid.append(Example(user, tuple(items[: n - 2]), items[n - 2], "valid"))
        split.test.append(Example(user, tuple(items[: n - 1]), items[n - 1], "test"))
    if not split.test:
        raise DataError(f"no user has at least {MIN_ITEMS} items: nothing to split")
    return split

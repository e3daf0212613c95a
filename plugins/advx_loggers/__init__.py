"""Built-in metric loggers: ``console`` and ``csv``.

A recipe enables them under ``loggers:``::

    loggers: [{name: console, every: 5}, {name: csv}]

Each receives every record the loop writes to ``metrics.jsonl``: improvement steps
(``kind: step``) and rounds (``kind: round``). ``metrics.jsonl`` itself is always written by
the core; these are conveniences (a terminal echo, a spreadsheet-friendly file).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import advx
from advx.components import BuildContext
from advx.rundir import atomic_write_text, jsonable
from rich.console import Console

__all__ = ["ConsoleLogger", "ConsoleLoggerConfig", "CsvLogger", "CsvLoggerConfig"]


@dataclass
class ConsoleLoggerConfig:
    """``every``: print every n-th step record (round records always); ``keys``: only
    metrics whose name starts with one of these prefixes (empty: all); ``precision``:
    significant digits of floats."""

    every: int = 1
    keys: list[str] = field(default_factory=list)
    precision: int = 4


class ConsoleLogger:
    """Prints one line per record on stdout."""

    def __init__(self, config: ConsoleLoggerConfig, ctx: BuildContext) -> None:
        self.config = config
        self.console = Console(highlight=False, soft_wrap=True)

    def _wanted(self, key: str) -> bool:
        return not self.config.keys or any(key.startswith(p) for p in self.config.keys)

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        kind = metrics.get("kind", "step")
        if kind == "step" and step % max(self.config.every, 1) != 0:
            return
        p = self.config.precision
        values = "  ".join(
            f"{k}={v:.{p}g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in metrics.items()
            if "/" in k and self._wanted(k)
        )
        line = f"[{kind} r{metrics.get('round', '?')} s{step}] {values}"
        self.console.print(line, markup=False)

    def close(self) -> None:
        pass


@dataclass
class CsvLoggerConfig:
    """``path``: the CSV file, relative to the run directory."""

    path: str = "metrics.csv"


class CsvLogger:
    """All records in one CSV (columns: the union of every record's keys).

    The file is rewritten atomically after every round and at close, so a reader never sees
    half a file. On ``--resume`` the rows of rounds being redone are dropped first.
    """

    def __init__(self, config: CsvLoggerConfig, ctx: BuildContext) -> None:
        self.path = Path(ctx.run_dir) / config.path
        self.rows: list[dict[str, Any]] = []
        self._fresh = True
        if self.path.exists():
            with open(self.path, newline="", encoding="utf-8") as handle:
                self.rows = list(csv.DictReader(handle))

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        row = jsonable(dict(metrics))
        if self._fresh:  # a resumed run starts again at this round: drop what it redoes
            start = int(row.get("round", 0))
            self.rows = [r for r in self.rows if int(r.get("round") or 0) < start]
            self._fresh = False
        self.rows.append(row)
        if row.get("kind") == "round":
            self.flush()

    def flush(self) -> None:
        columns: dict[str, None] = {}
        for row in self.rows:
            columns.update(dict.fromkeys(row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buffer.getvalue())

    def close(self) -> None:
        if self.rows:
            self.flush()


def build_console(config: ConsoleLoggerConfig, ctx: BuildContext) -> ConsoleLogger:
    return ConsoleLogger(config, ctx)


def build_csv(config: CsvLoggerConfig, ctx: BuildContext) -> CsvLogger:
    return CsvLogger(config, ctx)


@advx.hookimpl
def advx_register_loggers(register: advx.hookspecs.Register) -> None:
    register("console", build_console, ConsoleLoggerConfig)
    register("csv", build_csv, CsvLoggerConfig)

"""The run's progress display: a rich live bar on a terminal, plain lines otherwise.

A lifecycle-hook implementation like any other plugin (the CLI registers one for its run):
it receives the loop's step and round records exactly as loggers do. Shows round,
improvement step, ETA and the latest reward terms. Plain mode (logs, CI, pipes) prints one
line every ``every``-th step and every round end.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

import advx
from advx.run_info import RunInfo

__all__ = ["RichProgress"]


def _fmt(metrics: Mapping[str, Any], prefix: str = "reward/", limit: int = 6) -> str:
    items = [(k, v) for k, v in metrics.items() if k.startswith(prefix)][:limit]
    return "  ".join(f"{k.removeprefix(prefix)}={v:.4g}" for k, v in items
                     if isinstance(v, (int, float)))


_NOT_SHOWN = ("kind", "round", "global_step", "evaluated")


class RichProgress:
    """Implements the lifecycle hooks with rich; :meth:`close` stops a live display (the CLI
    calls it after the run, whatever ended it)."""

    def __init__(self, console: Console | None = None, every: int = 10) -> None:
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.live = self.console.is_terminal
        self.every = max(every, 1)
        self.progress: Progress | None = None
        self.task_id: Any = None
        self.rounds = self.rl_steps = 0
        self._t0 = time.perf_counter()

    @advx.hookimpl
    def advx_on_run_start(self, run: RunInfo) -> None:
        loop = run.recipe.get("loop") or {}
        self.rounds, self.rl_steps = int(loop.get("rounds", 0)), int(loop.get("rl_steps", 0))
        first = 0 if run.resumed_from_round is None else run.resumed_from_round + 1
        where = "resuming at round" if first > 0 else "starting at round"
        self.console.print(f"advx {run.name}: {self.rounds} rounds × {self.rl_steps} steps, "
                           f"{where} {first} → {run.run_dir}", highlight=False, markup=False)
        if self.live:
            self.progress = Progress(
                TextColumn("[bold]round {task.fields[round]}/{task.fields[rounds]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[terms]}"),
                console=self.console,
                transient=False,
            )
            self.progress.start()
            done = max(first - 1, 0) * self.rl_steps
            self.task_id = self.progress.add_task(
                "run", total=max(self.rounds * self.rl_steps, 1), completed=done, round=first,
                rounds=self.rounds, terms="",
            )

    @advx.hookimpl
    def advx_on_step_end(self, run: RunInfo, round: int, step: int,
                         metrics: Mapping[str, float]) -> None:
        terms = _fmt(metrics)
        if self.progress is not None:
            self.progress.update(self.task_id, advance=1, round=round, terms=terms)
        elif step == 1 or step % self.every == 0 or step == self.rl_steps:
            elapsed = time.perf_counter() - self._t0
            self.console.print(f"round {round}/{self.rounds}  step {step}/{self.rl_steps}  "
                               f"{terms}  [{elapsed:.0f}s]", highlight=False, markup=False)

    @advx.hookimpl
    def advx_on_round_end(self, run: RunInfo, round: int, metrics: Mapping[str, Any]) -> None:
        shown = {k: v for k, v in metrics.items()
                 if k not in _NOT_SHOWN and not k.startswith(("time/", "optim/", "rollout/"))}
        line = "  ".join(f"{k}={v:.4g}" for k, v in list(shown.items())[:8]
                         if isinstance(v, (int, float)) and not isinstance(v, bool))
        message = f"round {round}/{self.rounds} done  {line}"
        console = self.progress.console if self.progress is not None else self.console
        console.print(message, highlight=False, markup=False)

    @advx.hookimpl
    def advx_on_run_end(self, run: RunInfo, summary: Mapping[str, Any]) -> None:
        self.close()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

"""The run's progress display: a rich live bar on a terminal, plain lines otherwise.

Shows round, phase, improvement step, ETA and the latest reward terms. Plain mode (logs,
CI, pipes) prints one line per phase change, every ``every``-th step and every round end.
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

__all__ = ["RichReporter"]


def _fmt(metrics: Mapping[str, Any], prefix: str = "reward/", limit: int = 6) -> str:
    items = [(k, v) for k, v in metrics.items() if k.startswith(prefix)][:limit]
    return "  ".join(f"{k.removeprefix(prefix)}={v:.4g}" for k, v in items
                     if isinstance(v, (int, float)))


class RichReporter:
    """Implements :class:`advx.loop.Reporter` with rich."""

    def __init__(self, console: Console | None = None, every: int = 10) -> None:
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.live = self.console.is_terminal
        self.every = max(every, 1)
        self.progress: Progress | None = None
        self.task_id: Any = None
        self.rounds = self.rl_steps = 0
        self._t0 = time.perf_counter()

    def start(self, name: str, rounds: int, rl_steps: int, first_round: int) -> None:
        self.rounds, self.rl_steps = rounds, rl_steps
        where = "resuming at round" if first_round > 0 else "starting at round"
        self.console.print(f"[bold]advx[/] {name}: {rounds} rounds × {rl_steps} steps, "
                           f"{where} {first_round}")
        if self.live:
            self.progress = Progress(
                TextColumn("[bold]round {task.fields[round]}/{task.fields[rounds]}"),
                TextColumn("{task.fields[phase]:<10}"),
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
            done = max(first_round - 1, 0) * rl_steps
            self.task_id = self.progress.add_task(
                "run", total=max(rounds * rl_steps, 1), completed=done, round=first_round,
                rounds=rounds, phase="", terms="",
            )

    def _update(self, **fields: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task_id, **fields)

    def phase(self, round: int, phase: str) -> None:
        if self.live:
            self._update(round=round, phase=phase)
        else:
            self.console.print(f"round {round}/{self.rounds}  {phase}", highlight=False)

    def step(self, round: int, step: int, metrics: Mapping[str, float]) -> None:
        terms = _fmt(metrics)
        if self.live:
            self._update(advance=1, round=round, phase="improve", terms=terms)
        elif step == 1 or step % self.every == 0 or step == self.rl_steps:
            elapsed = time.perf_counter() - self._t0
            self.console.print(f"round {round}/{self.rounds}  step {step}/{self.rl_steps}  "
                               f"{terms}  [{elapsed:.0f}s]", highlight=False)

    def round_end(self, round: int, metrics: Mapping[str, Any]) -> None:
        shown = {k: v for k, v in metrics.items()
                 if k not in ("kind", "round", "global_step", "evaluated")
                 and not k.startswith("time/")}
        line = "  ".join(f"{k}={v:.4g}" for k, v in list(shown.items())[:8]
                         if isinstance(v, (int, float)))
        message = f"round {round}/{self.rounds} done  {line}"
        if self.progress is not None:
            self.progress.console.print(message, highlight=False)
        else:
            self.console.print(message, highlight=False)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

"""Identity of a running experiment, handed to lifecycle hooks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RunInfo"]


@dataclass
class RunInfo:
    """Where a run writes and what it runs.

    Attributes:
        name: the recipe's ``name``.
        run_dir: ``runs/<recipe>/<timestamp>/`` (holds recipe.yaml, metrics.jsonl, ...).
        recipe: the resolved recipe as a plain dict.
        seed: the run's seed.
        resumed_from_round: the last complete round a resumed run starts after, else None.
    """

    name: str
    run_dir: Path
    recipe: dict[str, Any]
    seed: int
    resumed_from_round: int | None = None

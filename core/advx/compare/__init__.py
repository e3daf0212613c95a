"""``advx compare``: conditions × seeds as one resumable, distributable study.

:mod:`advx.compare.spec` reads and checks the compare file, :mod:`advx.compare.cells` runs
the cells through an Optuna storage, :mod:`advx.compare.report` makes the tables and plots
(with :mod:`advx.stats`); the commands live in :mod:`advx.cli` with the others.
See docs/compare.md.
"""

from __future__ import annotations

from advx.compare.cells import Cell, CompareResult, load_cells, run_compare
from advx.compare.spec import CompareSpec, Condition, check_conditions, load_compare

__all__ = [
    "Cell",
    "CompareResult",
    "CompareSpec",
    "Condition",
    "check_conditions",
    "load_cells",
    "load_compare",
    "run_compare",
]

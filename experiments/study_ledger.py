"""What the ledger-reading scripts (negatives_per_seed.py, kept_refits.py) share: the compare
file named on the command line, and each condition's committed ledger entries, so a study's
tables come back without its run folders."""

from __future__ import annotations

import argparse
from typing import Any

from advx.compare import ledger
from advx.compare.spec import CompareSpec, load_compare
from advx.errors import AdvxError


def study_from_command_line(description: str, default: str) -> CompareSpec:
    """The compare file given as the one optional argument; a bad one is one message, exit 2."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("compare", nargs="?", default=default)
    try:
        return load_compare(parser.parse_args().compare)
    except AdvxError as exc:
        parser.error(str(exc))


def entries(spec: CompareSpec, condition: str) -> dict[int, dict[str, Any]]:
    """Seed -> the condition's ledger entry, for the seeds that have one."""
    return {seed: entry for seed in spec.seeds
            if (entry := ledger.read_entry(ledger.entry_path(spec, condition, seed)))}

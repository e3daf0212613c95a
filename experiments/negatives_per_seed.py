"""Per-seed table of a compare study's ledger (docs/results/cold_start.md, "Label-specific
remedies in the study"): cold PR-AUC after round 4 / label agreement under C_0 at round 4
(relevant side), per condition and seed, read from the committed ledger, so it needs no run
folders.

    python experiments/negatives_per_seed.py [compares/cold_start_negatives.yaml]

Paired differences with intervals come from ``advx compare show FILE --baseline NAME``; this
only lays the seeds side by side.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from advx.compare import ledger
from advx.compare.spec import load_compare
from advx.errors import AdvxError

PR_AUC, AGREEMENT, RELEVANT = ("cold/pr_auc", "gen/label_agreement_c0",
                               "gen/label_agreement_c0_relevant")


def shown(metrics: dict[str, Any] | None) -> str:
    """``PR-AUC / agreement (relevant side)``; the agreement only where the cell logged it."""
    if metrics is None:
        return "–"
    text = f"{metrics[PR_AUC]:.3f}"
    if metrics.get(AGREEMENT) is not None:
        text += f" / {metrics[AGREEMENT]:.2f} ({metrics[RELEVANT]:.2f})"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("compare", nargs="?", default="compares/cold_start_negatives.yaml")
    try:
        spec = load_compare(parser.parse_args().compare)
    except AdvxError as exc:
        parser.error(str(exc))  # one message, exit code 2
    cells = {(condition, seed): entry["user_attrs"]["metrics"]
             for condition in spec.conditions for seed in spec.seeds
             if (entry := ledger.read_entry(ledger.entry_path(spec, condition, seed)))}
    print("| seed | " + " | ".join(f"`{c}`" for c in spec.conditions) + " |")
    print("|---|" + "---|" * len(spec.conditions))
    for seed in spec.seeds:
        row = " | ".join(shown(cells.get((c, seed))) for c in spec.conditions)
        print(f"| {seed} | {row} |")
    means = []
    for condition in spec.conditions:
        done = [m for (c, _), m in cells.items() if c == condition]
        if not done:
            means.append("–")
            continue
        agreements = [m[AGREEMENT] for m in done if m.get(AGREEMENT) is not None]
        agreement = f" / {statistics.mean(agreements):.2f}" if agreements else ""
        means.append(f"{statistics.mean(m[PR_AUC] for m in done):.3f}{agreement} (n {len(done)})")
    print("| mean | " + " | ".join(means) + " |")


if __name__ == "__main__":
    main()

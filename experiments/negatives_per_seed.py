"""Per-seed table of a compare study's ledger (docs/results/cold_start.md, "Label-specific
remedies in the study"): cold PR-AUC after round 4 / label agreement under C_0 at round 4
(relevant side), per condition and seed, read from the committed ledger, so it needs no run
folders.

    python experiments/negatives_per_seed.py [compares/cold_start_negatives.yaml]

Paired differences with intervals come from ``advx compare show FILE --baseline NAME``; this
only lays the seeds side by side.
"""

from __future__ import annotations

import statistics
from typing import Any

from study_ledger import entries, study_from_command_line

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
    spec = study_from_command_line(__doc__.splitlines()[0], "compares/cold_start_negatives.yaml")
    cells = {(condition, seed): entry["user_attrs"]["metrics"]
             for condition in spec.conditions
             for seed, entry in entries(spec, condition).items()}
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

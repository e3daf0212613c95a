"""Per-seed table of the negatives study (docs/results/cold_start.md, "Label-specific remedies
in the study"): cold PR-AUC after round 4 / label agreement under C_0 at round 4 (relevant
side), read from the committed ledger, so it needs no run folders.

    python experiments/negatives_per_seed.py [--ledger compares/ledgers/cold_start_negatives]

Paired differences with intervals come from ``advx compare show FILE --baseline NAME``; this
only lays the seeds side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

CONDITIONS = {"a_no_augment": "(a)", "b_sft_augment": "(b)", "c_novelty_sum": "(c)",
              "b_best_of_4": "`b_best_of_4`", "c_consistency": "`c_consistency`"}


def cell(ledger: Path, condition: str, seed: int) -> dict[str, float] | None:
    path = ledger / condition / f"seed-{seed}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())["user_attrs"]["metrics"]


def shown(metrics: dict[str, float] | None, agreement: bool) -> str:
    if metrics is None:
        return "–"
    text = f"{metrics['cold/pr_auc']:.3f}"
    if agreement and metrics.get("gen/label_agreement_c0") is not None:
        text += (f" / {metrics['gen/label_agreement_c0']:.2f}"
                 f" ({metrics['gen/label_agreement_c0_relevant']:.2f})")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ledger", type=Path,
                        default=Path("compares/ledgers/cold_start_negatives"))
    args = parser.parse_args()
    seeds = sorted({int(p.stem.split("-")[1]) for p in args.ledger.glob("b_best_of_4/seed-*.json")}
                   | {int(p.stem.split("-")[1])
                      for p in args.ledger.glob("c_consistency/seed-*.json")})
    print("| seed | " + " | ".join(CONDITIONS.values()) + " |")
    print("|---|" + "---|" * len(CONDITIONS))
    columns: dict[str, list[dict[str, float]]] = {c: [] for c in CONDITIONS}
    for seed in seeds:
        row = []
        for condition in CONDITIONS:
            metrics = cell(args.ledger, condition, seed)
            row.append(shown(metrics, condition != "a_no_augment"))
            if metrics is not None:
                columns[condition].append(metrics)
        print(f"| {seed} | " + " | ".join(row) + " |")
    means = []
    for condition, cells in columns.items():
        if not cells:
            means.append("–")
            continue
        text = f"{statistics.mean(c['cold/pr_auc'] for c in cells):.3f}"
        agreements = [c["gen/label_agreement_c0"] for c in cells
                      if c.get("gen/label_agreement_c0") is not None]
        if agreements and condition != "a_no_augment":
            text += f" / {statistics.mean(agreements):.2f}"
        means.append(f"{text} (n {len(cells)})")
    print("| mean | " + " | ".join(means) + " |")


if __name__ == "__main__":
    main()

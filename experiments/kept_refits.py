"""How many of a study's classifier refits were kept, per condition and round, read from the
committed ledger (docs/results/cold_start.md, "Fit negatives in the presets' own
configuration"): with ``classifier.start_competes=true`` a round's refit is discarded when it
does not lower the held-out warm validation loss, and the run logs ``cls/best_epoch`` 0.

    python experiments/kept_refits.py [compares/cold_start_fit_negatives.yaml]

A cell counts for a round only where its ledger entry holds that round's ``cls/best_epoch``
(the study lists it under ``metrics``); the others are reported as not recorded, never as
kept or discarded. Round 0 is C_0's own fit and is not counted.
"""

from __future__ import annotations

from collections import Counter

from study_ledger import entries, study_from_command_line

BEST_EPOCH = "cls/best_epoch"


def kept_by_round(cells: list[dict]) -> tuple[Counter[int], Counter[int]]:
    """Per round ≥ 1: how many cells kept their refit, and how many recorded the round."""
    kept: Counter[int] = Counter()
    recorded: Counter[int] = Counter()
    for entry in cells:
        for record in entry["user_attrs"].get("rounds", []):
            if record.get("round", 0) >= 1 and record.get(BEST_EPOCH) is not None:
                recorded[record["round"]] += 1
                kept[record["round"]] += record[BEST_EPOCH] > 0
    return kept, recorded


def main() -> None:
    spec = study_from_command_line(__doc__.splitlines()[0],
                                   "compares/cold_start_fit_negatives.yaml")
    print("| condition | cells | kept / recorded, by round | total |")
    print("|---|---|---|---|")
    for condition in spec.conditions:
        done = list(entries(spec, condition).values())
        kept, recorded = kept_by_round(done)
        rounds = ", ".join(f"{r}: {kept[r]} / {recorded[r]}" for r in sorted(recorded))
        total = (f"{sum(kept.values())} / {sum(recorded.values())}" if recorded
                 else "not recorded")
        print(f"| `{condition}` | {len(done)} | {rounds or '–'} | {total} |")


if __name__ == "__main__":
    main()

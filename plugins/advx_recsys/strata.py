"""The AdaGRPO paper's stratified analysis: did the GRPO term help, per diagnostic stratum?

Input: the per-prompt records that optimizer ``adagrpo`` writes with ``log_samples: true``
(``<run_dir>/adagrpo_samples.jsonl``) for a METHOD run (a fixed mixture or AdaGRPO) and for
the NLL-only BASELINE run that branched from the same checkpoint with the same seed (so step
s draws the same prompts in both). For every prompt, the update's effect on the ground truth
is ``Δ = log π_after(y) − log π_before(y)``. Records are paired by ``(round, step, index)``;
each pair is put in a stratum by the method run's two diagnostics:

* policy-side difficulty: ``difficulty_pass`` (the recorded gate test), or a threshold on a
  recorded value (``gt_logprob`` below it / ``rollout_entropy`` above it);
* ranker discriminability: ``discriminability_pass``, or ``disc_share`` ≥ a threshold.

Per stratum: the number of pairs, mean Δ of the method and of the baseline, and the paired
difference mean(Δ_method − Δ_baseline) with its standard error (> 0: the GRPO term moved the
ground truth up more than NLL alone did, in that stratum).

That standard error treats the prompts of one run as independent, which they are not (they
share every update). The claim is made across seeds: :func:`across_seeds` takes each seed's
paired mean per stratum as one unit and gives their mean with a Student t interval over the
seeds. Command line::

    python -m advx_recsys.strata METHOD_RUN BASELINE_RUN        # one pair of runs
    python -m advx_recsys.strata --compare compares/adagrpo_beauty_full.yaml [--runs-dir DIR]

The second reads every finished cell of the compare and pairs each condition's cell with the
baseline condition's cell of the same seed (``advx compare``'s shared start makes them branch
from one checkpoint), then prints one markdown table over the seeds.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from advx.errors import DataError

__all__ = ["across_seeds", "compare_strata", "load_samples", "stratify"]

SAMPLES = "adagrpo_samples.jsonl"


def load_samples(run: Path) -> list[dict[str, Any]]:
    """The records of ``run`` (a run directory, or the JSONL file itself, gzipped or not)."""
    from advx.compare.ledger import open_text

    path = Path(run)
    path = path / SAMPLES if path.is_dir() else path
    if not path.is_file():
        raise DataError(f"{path}: no per-sample AdaGRPO records; run with "
                        f"optimizer.log_samples=true")
    return [json.loads(line) for line in open_text(path).splitlines() if line.strip()]


def _cell_samples(cell: Any) -> list[dict[str, Any]]:
    """A compare cell's records: from its run folder, or from the compare's ledger when the
    folder is on another machine (``ledger_files: [adagrpo_samples.jsonl]``)."""
    from advx.compare.ledger import cell_file

    path = cell_file(cell.trial, SAMPLES)
    if path is None:
        raise DataError(f"{cell.condition} seed {cell.seed}: no {SAMPLES} in its run folder "
                        f"{cell.run_dir} nor in the compare's ledger; run with "
                        f"optimizer.log_samples=true, and keep it with ledger_files: [{SAMPLES}]")
    return load_samples(path)


def _stratum(record: Mapping[str, Any], difficulty: str, difficulty_threshold: float | None,
             disc_threshold: float | None) -> tuple[bool, bool] | None:
    if difficulty_threshold is None:
        hard = bool(record["difficulty_pass"])
    else:
        value = record.get(difficulty)
        if value is None:
            return None
        hard = value < difficulty_threshold if difficulty == "gt_logprob" \
            else value > difficulty_threshold
    if disc_threshold is None:
        disc = bool(record["discriminability_pass"])
    else:
        share = record.get("disc_share")
        disc = share is not None and share >= disc_threshold
    return hard, disc


def stratify(
    method: Iterable[Mapping[str, Any]],
    baseline: Iterable[Mapping[str, Any]],
    difficulty: str = "gt_logprob",
    difficulty_threshold: float | None = None,
    disc_threshold: float | None = None,
) -> dict[str, dict[str, float]]:
    """Per stratum ``"hard=<bool>,disc=<bool>"``: ``n``, ``delta_method``,
    ``delta_baseline``, ``diff`` (paired mean) and ``se`` (its standard error; NaN for n < 2).

    ``difficulty_threshold`` / ``disc_threshold`` None: use the recorded gate tests.
    """
    if difficulty not in ("gt_logprob", "rollout_entropy"):
        raise ValueError("difficulty must be gt_logprob or rollout_entropy")
    base = {(r["round"], r["step"], r["index"]): r for r in baseline}
    groups: dict[tuple[bool, bool], list[tuple[float, float]]] = {}
    for r in method:
        key = (r["round"], r["step"], r["index"])
        b = base.get(key)
        if b is None or b.get("target") != r.get("target"):
            continue  # not the same prompt in both runs: no pair
        if None in (r["gt_logprob"], r["gt_logprob_after"], b["gt_logprob"],
                    b["gt_logprob_after"]):
            continue
        stratum = _stratum(r, difficulty, difficulty_threshold, disc_threshold)
        if stratum is None:
            continue
        groups.setdefault(stratum, []).append((
            r["gt_logprob_after"] - r["gt_logprob"], b["gt_logprob_after"] - b["gt_logprob"],
        ))
    out = {}
    for (hard, disc), pairs in sorted(groups.items()):
        n = len(pairs)
        diffs = [m - b for m, b in pairs]
        mean = sum(diffs) / n
        var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else math.nan
        out[f"hard={hard},disc={disc}"] = {
            "n": float(n),
            "delta_method": sum(m for m, _ in pairs) / n,
            "delta_baseline": sum(b for _, b in pairs) / n,
            "diff": mean,
            "se": math.sqrt(var / n) if n > 1 else math.nan,
        }
    return out


def across_seeds(per_seed: Mapping[int, Mapping[str, Mapping[str, float]]]
                 ) -> dict[str, dict[str, float]]:
    """Per stratum, over the seeds that have it: ``seeds``, ``pairs`` (all seeds), the means
    of the seeds' ``delta_method`` / ``delta_baseline`` / ``diff``, and ``ci_low`` /
    ``ci_high``: the 95% Student t interval of the seeds' ``diff`` (NaN for one seed).
    ``per_seed``: seed → :func:`stratify`'s table of that seed's pair of runs."""
    from advx.stats import describe, mean_ci

    strata = sorted({name for table in per_seed.values() for name in table})
    out = {}
    for name in strata:
        rows = [table[name] for table in per_seed.values() if name in table]
        diffs = [row["diff"] for row in rows]
        low, high = mean_ci(diffs) if len(diffs) > 1 else (math.nan, math.nan)
        out[name] = {
            "seeds": float(len(rows)), "pairs": float(sum(row["n"] for row in rows)),
            "delta_method": describe([row["delta_method"] for row in rows]).mean,
            "delta_baseline": describe([row["delta_baseline"] for row in rows]).mean,
            "diff": describe(diffs).mean, "ci_low": low, "ci_high": high,
        }
    return out


def compare_strata(compare_file: Path, runs_dir: Path | None = None,
                   storage: str | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """condition → :func:`across_seeds` table, for every condition of a compare but its
    baseline, over the seeds where both cells are done."""
    from advx.compare import load_compare
    from advx.compare.cells import default_runs_dir, existing_storage, load_cells

    spec = load_compare(compare_file)
    runs_dir = Path(runs_dir) if runs_dir else default_runs_dir(spec)
    cells = [c for c in load_cells(spec, existing_storage(spec, storage, runs_dir))
             if c.state == "done"]
    base = {c.seed: c for c in cells if c.condition == spec.baseline}
    tables = {}
    for condition in spec.conditions:
        if condition == spec.baseline:
            continue
        per_seed = {c.seed: stratify(_cell_samples(c), _cell_samples(base[c.seed]))
                    for c in cells if c.condition == condition and c.seed in base}
        tables[condition] = across_seeds(per_seed)
    return tables


def _f(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.4f}"


def main(argv: list[str] | None = None) -> None:
    import argparse

    from advx.errors import AdvxError, print_error

    parser = argparse.ArgumentParser(prog="python -m advx_recsys.strata",
                                     description="AdaGRPO's stratified analysis")
    parser.add_argument("runs", nargs="*", metavar="RUN",
                        help="METHOD_RUN BASELINE_RUN (one pair), or none with --compare")
    parser.add_argument("--compare", type=Path, help="a compare file: every condition × seed "
                        "against the baseline condition of the same seed")
    parser.add_argument("--runs-dir", type=Path, help="the compare's runs folder")
    parser.add_argument("--storage", help="the compare's storage URL")
    args = parser.parse_args(argv)
    if (args.compare is None) == (len(args.runs) != 2):
        parser.error("give METHOD_RUN BASELINE_RUN, or --compare FILE (and no runs)")
    try:
        if args.compare is None:
            table = stratify(load_samples(Path(args.runs[0])), load_samples(Path(args.runs[1])))
            print("stratum                 n   Δlogp method  Δlogp NLL-only  paired diff ± se "
                  "(within one run: prompts share updates, so optimistic)")
            for name, row in table.items():
                print(f"{name:<20} {int(row['n']):>5} {row['delta_method']:>13.4f} "
                      f"{row['delta_baseline']:>15.4f} {row['diff']:>12.4f} ± {row['se']:.4f}")
            return
        tables = compare_strata(args.compare, args.runs_dir, args.storage)
    except AdvxError as exc:
        print_error(exc)
        sys.exit(exc.exit_code)
    print("Per stratum (the method run's two diagnostics), Δ = log π(y) after the update − "
          "before; paired difference (method − NLL only) per seed, then its mean over the "
          "seeds with a 95% Student t interval over the seeds.\n")
    print("| condition | stratum | seeds | pairs | Δ method | Δ NLL only | paired diff | 95% CI |")
    print("|---|---|---|---|---|---|---|---|")
    for condition, table in tables.items():
        for name, row in table.items():
            print(f"| {condition} | {name} | {int(row['seeds'])} | {int(row['pairs'])} | "
                  f"{_f(row['delta_method'])} | {_f(row['delta_baseline'])} | "
                  f"{_f(row['diff'])} | [{_f(row['ci_low'])}, {_f(row['ci_high'])}] |")


if __name__ == "__main__":
    main()

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
ground truth up more than NLL alone did, in that stratum). ``python -m advx_recsys.strata
METHOD_RUN BASELINE_RUN`` prints the table.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from advx.errors import DataError

__all__ = ["load_samples", "stratify"]

SAMPLES = "adagrpo_samples.jsonl"


def load_samples(run: Path) -> list[dict[str, Any]]:
    """The records of ``run`` (a run directory or the JSONL file itself)."""
    path = Path(run)
    path = path / SAMPLES if path.is_dir() else path
    if not path.is_file():
        raise DataError(f"{path}: no per-sample AdaGRPO records; run with "
                        f"optimizer.log_samples=true")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 2:
        raise SystemExit("usage: python -m advx_recsys.strata METHOD_RUN BASELINE_RUN")
    table = stratify(load_samples(Path(args[0])), load_samples(Path(args[1])))
    print("stratum                 n   Δlogp method  Δlogp NLL-only  paired diff ± se")
    for name, row in table.items():
        print(f"{name:<20} {int(row['n']):>5} {row['delta_method']:>13.4f} "
              f"{row['delta_baseline']:>15.4f} {row['diff']:>12.4f} ± {row['se']:.4f}")


if __name__ == "__main__":
    main()

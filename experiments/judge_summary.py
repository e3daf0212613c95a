"""Summarise the cross-fitted judge over seeds (docs/results/cold_start.md, "Best-of-4 over 10
seeds").

Reads the lines experiments/cold_start_judge.py wrote, one file per seed (``judge-<s>.jsonl``),
and the probe file each line names (for C_0's agreement on the real cold queries), and prints a
Markdown report: per seed, the agreement of the real cold queries and of the generated queries
under both judges (C_0, fitted on warm products only; the cross-fitted judge, which also learned
from the other folds' cold products); then, over seeds, mean ± sd, how many seeds reach the
target, the mean's distance to it, and the paired differences that decide what a 0.8 target
measures: generated − real under each judge, and cross-fitted − C_0 (advx.stats.paired: BCa
bootstrap over seeds from 6 on, Student t below).

    .venv/bin/python experiments/judge_summary.py \
        experiments/cold_start_best_of_4_probe/judged/judge-*.jsonl [--target 0.8]
"""
import argparse
import json
import sys
from pathlib import Path

from advx.stats import describe, paired
from probe_summary import fmt, seed_of

Record = dict[str, float]


def read_judge(path: Path) -> dict[str, Record]:
    """One seed's agreement records, keyed '<judge>, <queries>' (judge: C_0 or cross-fitted)."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if len(lines) != 1 or "real_cold_crossfit" not in lines[0]:
        raise ValueError(f"{path}: expected the one line experiments/cold_start_judge.py "
                         "writes for a probe file")
    line = lines[0]
    probe = Path(line["file"])
    first = json.loads(probe.read_text().splitlines()[0])  # the probe's C_0 line
    records = {"C_0, real": first["real_cold_c0"],
               "cross-fitted, real": line["real_cold_crossfit"]}
    cells = [k for k, v in line.items() if isinstance(v, dict) and "crossfit" in v]
    if len(cells) != 1:  # one generated cell per seed keeps the table one row a seed
        raise ValueError(f"{path}: expected one probe cell (as --report 4 --settings T0.7k4 "
                         f"writes), found {cells}")
    if line[cells[0]]["unjudged"]:
        raise ValueError(f"{path}: {line[cells[0]]['unjudged']} generated queries were not "
                         "judged (a product outside the cold split)")
    records["C_0, generated"] = line[cells[0]]["c0"]
    records["cross-fitted, generated"] = line[cells[0]]["crossfit"]
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--target", type=float, default=0.8)
    args = parser.parse_args()
    try:
        seeds = {seed_of(f, "judge"): read_judge(f) for f in args.files}
    except (OSError, ValueError, KeyError, IndexError) as exc:
        print(f"judge_summary: {exc}", file=sys.stderr)
        sys.exit(2)
    keys = list(next(iter(seeds.values())))
    print("| seed | " + " | ".join(keys) + " |")
    print("|---" * (1 + len(keys)) + "|")
    for s in sorted(seeds):
        row = [f"{r['agree']:.3f} ({r['agree_rel']:.2f} / {r['agree_irr']:.2f})"
               for r in (seeds[s][k] for k in keys)]
        print(f"| {s} | " + " | ".join(row) + " |")

    def values(key: str, field: str = "agree") -> dict[int, float]:
        return {s: seeds[s][key][field] for s in seeds}

    print(f"\nOver {len(seeds)} seeds (mean ± sd; overall / relevant / irrelevant):\n")
    for key in keys:
        parts = [describe(list(values(key, f).values())) for f in
                 ("agree", "agree_rel", "agree_irr")]
        agree = values(key)
        gap = paired(agree, dict.fromkeys(agree, args.target))
        print(f"- {key}: " + " / ".join(f"{p.mean:.3f} ± {p.sd:.3f}" for p in parts)
              + f"; ≥ {args.target} on {sum(v >= args.target for v in agree.values())} of "
              f"{len(agree)} seeds; mean − {args.target}: {fmt(gap)}")
    print("\nPaired differences in overall agreement (first − second):\n")
    for first, second in [("C_0, generated", "C_0, real"),
                          ("cross-fitted, generated", "cross-fitted, real"),
                          ("cross-fitted, real", "C_0, real"),
                          ("cross-fitted, generated", "C_0, generated")]:
        print(f"- {first} − {second}: {fmt(paired(values(first), values(second)))}")


if __name__ == "__main__":
    main()

"""Summarise SFT probes over seeds (docs/results/cold_start.md, "Best-of-4 over 10 seeds").

Reads the JSON lines that experiments/cold_start_sft_probe.py wrote, one file per seed
(``seed-<s>.jsonl``), and prints a Markdown report: per seed, the label agreement of the real
cold queries under C_0 and of the generated queries at each (SFT epoch, sampling setting);
then, per (epoch, setting), mean ± sd over seeds, how many seeds reach the target, the interval
of the mean's distance to the target, and the paired differences between epochs and between
settings, and against the real cold queries under the same judge (advx.stats.paired: BCa
bootstrap over seeds from 6 on, Student t below). ``--against`` takes another configuration's
probe files (e.g. another ``task.max_products``) and adds, seed by seed, the paired differences
of each cell against that configuration's cells of the same sampling setting, and of the real
cold queries' agreement (how much the judge itself changed).

    .venv/bin/python experiments/probe_summary.py /work/probe/seed-*.jsonl [--target 0.8] \
        [--against experiments/cold_start_best_of_4_probe/seed-*.jsonl]
"""
import argparse
import json
import re
import sys
from itertools import combinations
from pathlib import Path

from advx.stats import Paired, describe, paired

Cell = tuple[int, str]  # (SFT epoch, sampling setting)
Probe = tuple[dict, dict[Cell, dict]]  # C_0's line, {cell: agreement record}


def read_probe(path: Path) -> Probe:
    """C_0's line and ``{(epoch, setting): agreement record}`` of one seed's probe file."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not lines or "real_cold_c0" not in lines[0]:
        raise ValueError(f"{path}: expected the probe's C_0 line first; is it a probe output?")
    cells = {(line["epoch"], name): value for line in lines[1:]
             for name, value in line.items() if isinstance(value, dict)}
    return lines[0], cells


def seed_of(path: Path, prefix: str = "seed") -> int:
    match = re.search(rf"{prefix}-(\d+)", path.name)
    if not match:
        raise ValueError(f"{path}: expected a file named {prefix}-<s>.jsonl")
    return int(match.group(1))


def read_probes(files: list[Path]) -> dict[int, Probe]:
    """One probe per seed; an empty file is a seed not begun yet and is left out."""
    return {seed_of(f): read_probe(f) for f in files if f.stat().st_size}


def complete(probes: dict[int, Probe]) -> tuple[list[Cell], list[int]]:
    """Every cell any seed reports, and the seeds that report them all (finished probes)."""
    cells = sorted({cell for _, c in probes.values() for cell in c})
    return cells, [s for s in sorted(probes) if set(probes[s][1]) == set(cells)]


def agreement(probe: Probe, cell: Cell | None, key: str = "agree") -> float:
    """A cell's agreement, or (cell None) the real cold queries' under the same C_0."""
    return probe[0]["real_cold_c0"][key] if cell is None else probe[1][cell][key]


def fmt(p: Paired) -> str:
    """A paired difference as 'mean [low, high] (CI method, t p, Wilcoxon p, n)'."""
    return (f"{p.mean_diff:+.3f} [{p.ci_low:+.3f}, {p.ci_high:+.3f}] "
            f"({p.ci_method}, t p {p.t_p:.3g}, W p {p.w_p:.3g}, n {p.n})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--target", type=float, default=0.8)
    parser.add_argument("--against", nargs="+", type=Path, default=[], metavar="FILE",
                        help="another configuration's probe files, paired by seed")
    args = parser.parse_args()
    try:
        probes = read_probes(args.files)
        against = read_probes(args.against)
    except (OSError, ValueError) as exc:
        print(f"probe_summary: {exc}", file=sys.stderr)
        sys.exit(2)
    seeds = sorted(probes)
    cells, finished = complete(probes)
    if unfinished := sorted(set(seeds) - set(finished)):
        print(f"Unfinished seeds (left out of the summary): {unfinished}\n")

    head = " | ".join(f"epoch {e}, {name}" for e, name in cells)
    print(f"| seed | real cold queries (C_0) | {head} |")
    print("|---" * (2 + len(cells)) + "|")
    for s in seeds:
        c0, c = probes[s]
        real = c0["real_cold_c0"]
        row = [f"{real['agree']:.2f} ({real['agree_rel']:.2f} / {real['agree_irr']:.2f})"]
        row += [f"{c[k]['agree']:.2f} ({c[k]['agree_rel']:.2f} / {c[k]['agree_irr']:.2f})"
                if k in c else "–" for k in cells]
        print(f"| {s} | " + " | ".join(row) + " |")

    def values(cell: Cell | None, key: str = "agree") -> dict[int, float]:
        return {s: agreement(probes[s], cell, key) for s in finished}

    print(f"\nOver {len(finished)} seeds (mean ± sd; overall / relevant / irrelevant):\n")
    for cell in [None, *cells]:
        name = "real cold queries" if cell is None else f"epoch {cell[0]}, {cell[1]}"
        parts = [describe(list(values(cell, k).values())) for k in
                 ("agree", "agree_rel", "agree_irr")]
        line = " / ".join(f"{p.mean:.3f} ± {p.sd:.3f}" for p in parts)
        agree = values(cell)
        reach = sum(v >= args.target for v in agree.values())
        gap = paired(agree, dict.fromkeys(agree, args.target))
        print(f"- {name}: {line}; ≥ {args.target} on {reach} of {len(agree)} seeds; "
              f"mean − {args.target}: {fmt(gap)}")
    print("\nPaired differences in overall agreement (first − second):\n")
    for a, b in combinations(cells, 2):
        if a[0] == b[0] or a[1] == b[1]:  # one factor at a time
            print(f"- epoch {b[0]}, {b[1]} − epoch {a[0]}, {a[1]}: "
                  f"{fmt(paired(values(b), values(a)))}")
    # the same judge on the real cold queries: how far its own errors put the ceiling
    for cell in cells:
        print(f"- epoch {cell[0]}, {cell[1]} − real cold queries: "
              f"{fmt(paired(values(cell), values(None)))}")
    if against:
        print_against(probes, finished, cells, against)


def print_against(probes: dict[int, Probe], finished: list[int], cells: list[Cell],
                  against: dict[int, Probe]) -> None:
    """Paired by seed: each cell against the other configuration's cells of the same sampling
    setting, and the real cold queries against theirs (each under its own configuration's C_0)."""
    other_cells, other_finished = complete(against)
    seeds = [s for s in finished if s in other_finished]
    print(f"\nAgainst the other configuration (its own C_0; seeds {seeds}):\n")
    pairs = [(None, None)] + [(a, b) for a in cells for b in other_cells if a[1] == b[1]]
    for mine, theirs in pairs:
        diff = paired({s: agreement(probes[s], mine) for s in seeds},
                      {s: agreement(against[s], theirs) for s in seeds})
        name = "real cold queries" if mine is None else f"epoch {mine[0]}, {mine[1]}"
        other = "theirs" if theirs is None else f"epoch {theirs[0]}, {theirs[1]}"
        print(f"- {name} − {other}: {fmt(diff)}")


if __name__ == "__main__":
    main()

"""Table of the one-piece ``seqgan_oracle_cpu.yaml`` runs (experiments/seqgan_oracle_cpu.sh).

Prints a markdown table (NLL-oracle / NLL-test per seed and mean ± sd, wall time per phase)
and writes docs/results/seqgan_oracle_cpu.json.

    .venv/bin/python experiments/seqgan_oracle_cpu_report.py [--runs runs/cpu_oneshot]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from advx.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]


def rounds(run_dir: Path) -> list[dict]:
    return [r for r in RunDir(run_dir).read_metrics() if r["kind"] == "round"]


def phase_times(records: list[dict]) -> dict[str, float]:
    """Seconds per phase over the run; runs without per-phase keys give the round split."""
    totals: dict[str, float] = {}
    for r in records:
        keys = [k for k in r if k.startswith("time/") and k != "time/round_s"]
        if not keys:  # older code: only time/round_s
            key = "pretraining (round 0)" if r["round"] == 0 else "adversarial rounds"
            totals[key] = totals.get(key, 0.0) + r["time/round_s"]
        for k in keys:
            name = k.removeprefix("time/").removesuffix("_s")
            totals[name] = totals.get(name, 0.0) + r[k]
    return {k: round(v, 1) for k, v in totals.items()}


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=Path, default=ROOT / "runs/cpu_oneshot")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/results/seqgan_oracle_cpu.json")
    args = parser.parse_args()
    per_seed = {}
    for seqgan in sorted(args.runs.glob("seqgan_seed*")):
        seed = seqgan.name.removeprefix("seqgan_seed")
        mle = args.runs / f"mle16_seed{seed}"
        if not (seqgan / "summary.json").exists() or not (mle / "summary.json").exists():
            continue
        s_rounds, m_rounds = rounds(seqgan), rounds(mle)
        evaluated = [r for r in s_rounds if "nll_oracle" in r]
        per_seed[seed] = {
            "mle15": {k: evaluated[0][k] for k in ("nll_oracle", "nll_test")},
            "seqgan_curve": [(r["round"], r["nll_oracle"], r["nll_test"]) for r in evaluated],
            "seqgan_final": {k: evaluated[-1][k] for k in ("nll_oracle", "nll_test")},
            "mle16": {k: m_rounds[-1][k] for k in ("nll_oracle", "nll_test")},
            "wall_s": {"seqgan": RunDir(seqgan).read_summary()["wall_s"],
                       "mle16": RunDir(mle).read_summary()["wall_s"]},
            "phases_s": {"seqgan": phase_times(s_rounds), "mle16": phase_times(m_rounds)},
        }
    print("| | " + " | ".join(f"seed {s}" for s in per_seed) + " | mean ± sd |")
    print("|---|" + "---|" * (len(per_seed) + 1))
    for label, key in (("MLE 15 epochs (SeqGAN's start)", "mle15"), ("MLE 16 epochs", "mle16"),
                       ("SeqGAN, 30 batches", "seqgan_final")):
        for metric in ("nll_oracle", "nll_test"):
            vals = [per_seed[s][key][metric] for s in per_seed]
            cells = " | ".join(f"{v:.3f}" for v in vals)
            print(f"| {label}: {metric} | {cells} | {mean_sd(vals)} |")
    for s, row in per_seed.items():
        print(f"seed {s}: wall {row['wall_s']}, phases {row['phases_s']}")
    args.out.write_text(json.dumps(per_seed, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

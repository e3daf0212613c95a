"""AdaGRPO experiment on Amazon Beauty: NLL only vs fixed NLL+GRPO mixtures vs AdaGRPO.

Per seed, the pretraining (tokenizer, semantic ids, SFT of the tiny causal policy, ranker fit
on the training split) is run ONCE with ``advx run recipes/nll_beauty.yaml loop.rounds=0``;
every method then continues a copy of that run directory with ``advx run --resume`` and its
own optimizer overrides, so all methods start from the same SFT checkpoint and ranker and see
the same number of RL steps (the CPU budget would not allow one pretraining per method).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python experiments/adagrpo_beauty.py \
        --seeds 0 --parallel --out runs/adagrpo_exp      # one process per seed; then:
    .venv/bin/python experiments/adagrpo_beauty.py --out runs/adagrpo_exp --report

Reports, per method, test HR@5/HR@10/NDCG@10/hallucination at the best-validation round
(by ``valid/hr@10`` over rounds 1..R) and at the final round, mean ± std over seeds; writes
``experiments/adagrpo_beauty_results.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADVX = str(Path(sys.executable).parent / "advx")

METHODS: dict[str, list[str]] = {
    "nll": ["optimizer.gate=never", "optimizer.grpo_weight=0.0"],
    "mix_0.1": ["optimizer.gate=always", "optimizer.grpo_weight=0.1"],
    "mix_1.0": ["optimizer.gate=always", "optimizer.grpo_weight=1.0"],
    "adagrpo_1.0": ["optimizer.gate=adaptive", "optimizer.grpo_weight=1.0"],
    # λ = 5: at λ = 1 the GRPO gradient barely moves the NLL-anchored policy in this budget
    "mix_5.0": ["optimizer.gate=always", "optimizer.grpo_weight=5.0"],
    "adagrpo_5.0": ["optimizer.gate=adaptive", "optimizer.grpo_weight=5.0"],
    # a more selective gate: "hard" = ground-truth log-prob below -10 (about the mean at the
    # SFT checkpoint) instead of "missed by all G rollouts" (which nearly every sample is here),
    # and the ranker must beat 80% of the valid rollout negatives
    "adagrpo_sel_5.0": ["optimizer.gate=adaptive", "optimizer.grpo_weight=5.0",
                        "optimizer.difficulty=logprob", "optimizer.difficulty_threshold=-10.0",
                        "optimizer.discriminability_threshold=0.8"],
    # policy-side difficulty by rollout entropy (mean token entropy ≈ 2.0 nats at SFT)
    "adagrpo_ent_5.0": ["optimizer.gate=adaptive", "optimizer.grpo_weight=5.0",
                        "optimizer.difficulty=entropy", "optimizer.difficulty_threshold=2.0"],
}
METRICS = ("hr@5", "hr@10", "ndcg@10", "hallucination")


def run(cmd: list[str], log: Path) -> None:
    print("$", " ".join(cmd), flush=True)
    with log.open("a") as f:
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=f, stderr=subprocess.STDOUT)


def rounds(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind") == "round" and r.get("evaluated")]


def pick(run_dir: Path) -> dict[str, dict]:
    """Test metrics at the best-validation round (rounds ≥ 1) and at the final round."""
    evaluated = [r for r in rounds(run_dir) if r["round"] >= 1]
    best = max(evaluated, key=lambda r: r["valid/hr@10"])
    final = evaluated[-1]

    def view(r: dict) -> dict:
        return {"round": r["round"], **{m: r[f"test/{m}"] for m in METRICS},
                "valid/hr@10": r["valid/hr@10"]}

    return {"best": view(best), "final": view(final), "pretrain": view(rounds(run_dir)[0]),
            "steps": step_means(run_dir)}


STEP_KEYS = ("adagrpo/gate_open_rate", "adagrpo/difficulty_pass_rate",
             "adagrpo/discriminability_pass_rate", "adagrpo/gt_in_rollouts",
             "reward/valid", "reward/hit", "reward/total", "grpo/kl")


def step_means(run_dir: Path) -> dict[str, float]:
    """Means over all RL steps of the gate and rollout statistics."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    steps = [r for r in map(json.loads, lines) if r.get("kind") == "step"]
    return {k: statistics.fmean(r[k] for r in steps) for k in STEP_KEYS if steps and k in steps[0]}


def done(run_dir: Path, rounds: int) -> bool:
    summary = run_dir / "summary.json"
    return summary.exists() and json.loads(summary.read_text()).get("rounds_completed") == rounds


def experiment(args: argparse.Namespace) -> None:
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    extra = list(args.overrides)
    for seed in args.seeds:
        pre = out / f"seed{seed}" / "pretrain"
        if args.wait_pretrain:  # a pretraining started by an earlier invocation is running
            while not done(pre, 0):
                time.sleep(20)
        if not done(pre, 0):
            t0 = time.time()
            run([ADVX, "run", "-q", "recipes/nll_beauty.yaml", f"seed={seed}", "loop.rounds=0",
                 *extra, "--run-dir", str(pre)], log)
            (pre / "wall_s.txt").write_text(f"{time.time() - t0:.0f}\n")
        jobs = []
        for method in args.methods:
            dst = out / f"seed{seed}" / method
            if done(dst, args.rounds):
                continue
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(pre, dst)
            cmd = [ADVX, "run", "-q", "--resume", str(dst), f"loop.rounds={args.rounds}",
                   *METHODS[method], *extra]
            print("$", " ".join(cmd), flush=True)
            jobs.append((dst, time.time(), subprocess.Popen(
                cmd, cwd=ROOT, stdout=(dst / "stdout.txt").open("w"),
                stderr=subprocess.STDOUT)))
            if not args.parallel:
                jobs[-1][2].wait()
        for dst, t0, job in jobs:
            if job.wait() != 0:
                raise SystemExit(f"{dst} failed: see {dst / 'stdout.txt'}")
            (dst / "wall_s.txt").write_text(f"{time.time() - t0:.0f}\n")


def report(args: argparse.Namespace) -> None:
    out = ROOT / args.out
    table: dict[str, dict] = {}
    for method in args.methods:
        per_seed = {}
        for seed in args.seeds:
            d = out / f"seed{seed}" / method
            if done(d, args.rounds):
                per_seed[seed] = pick(d)
        if not per_seed:
            continue
        agg = {}
        for which in ("pretrain", "best", "final"):
            agg[which] = {}
            for m in (*METRICS, "valid/hr@10"):
                values = [v[which][m] for v in per_seed.values()]
                agg[which][m] = {
                    "mean": statistics.fmean(values),
                    "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                }
        table[method] = {"seeds": per_seed, "mean": agg}
    dest = ROOT / "experiments/adagrpo_beauty_results.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(table, indent=1))
    print(f"wrote {dest.relative_to(ROOT)}")
    for which in ("best", "final"):
        print(f"\n{which} checkpoint (test, mean ± std over seeds {args.seeds}, ×100)")
        print("| method | HR@5 | HR@10 | NDCG@10 | hallucination | valid HR@10 | rounds |")
        print("|---|---|---|---|---|---|---|")
        for method, row in table.items():
            cells = [
                f"{100 * row['mean'][which][m]['mean']:.2f} "
                f"± {100 * row['mean'][which][m]['std']:.2f}"
                for m in (*METRICS, "valid/hr@10")
            ]
            picked = ",".join(str(v[which]["round"]) for v in row["seeds"].values())
            print(f"| {method} | " + " | ".join(cells) + f" | {picked} |")
    print("\nRL-step means (over steps and seeds)")
    print("| method | " + " | ".join(k.split("/")[-1] for k in STEP_KEYS) + " |")
    print("|---" * (len(STEP_KEYS) + 1) + "|")
    for method, row in table.items():
        cells = []
        for k in STEP_KEYS:
            values = [v["steps"][k] for v in row["seeds"].values() if k in v["steps"]]
            cells.append(f"{statistics.fmean(values):.3f}" if values else "-")
        print(f"| {method} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", default="runs/adagrpo_exp")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--parallel", action="store_true", help="run a seed's methods at once")
    parser.add_argument("--wait-pretrain", action="store_true",
                        help="wait for a pretraining run already in progress")
    parser.add_argument("overrides", nargs="*", help="recipe overrides for every run")
    args = parser.parse_args()
    if args.report:
        report(args)
    else:
        experiment(args)
        report(args)


if __name__ == "__main__":
    main()

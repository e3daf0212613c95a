"""Re-evaluate saved AdaGRPO checkpoints on more users (default 1,000 of the 2,000-user subset,
a different random draw than the runs' own 300) for less noise.

The task (same users, same semantic ids: ``subset_seed`` is fixed) and the tiny policy's
tokenizer are identical in every run of ``experiments/adagrpo_beauty.py``, so they are built
once and each checkpoint's generator weights are loaded into the same generator object.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python experiments/adagrpo_reeval.py \
        --out runs/adagrpo_exp --rounds 4 --seeds 0     # one worker per seed; then --summary
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))

from adagrpo_beauty import METHODS  # noqa: E402
from advx.build import build_components  # noqa: E402
from advx.components import Components  # noqa: E402
from advx.rundir import RunDir  # noqa: E402
from advx.runner import prepare_recipe  # noqa: E402

KEYS = ("hr@5", "hr@10", "ndcg@10", "hallucination")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/adagrpo_exp")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--rounds", type=int, nargs="+", default=[0, 4])
    parser.add_argument("--eval-users", type=int, default=1000, help="0 = every user")
    parser.add_argument("--summary", action="store_true", help="only print the table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = ROOT / args.out
    dest = ROOT / "experiments/adagrpo_beauty_reeval.json"
    results = json.loads(dest.read_text()) if dest.exists() else {}
    if args.summary:
        summarise(results, args)
        return

    first = out / f"seed{args.seeds[0]}" / "pretrain"
    spec = prepare_recipe(first / "recipe.yaml", [f"task.eval_users={args.eval_users}",
                                                  "classifier=null", "reward=null",
                                                  "optimizer=null"])
    components, _ = build_components(spec, out / "reeval_scratch")
    task, generator = components.task, components.generator
    for seed in args.seeds:
        for method in ["pretrain", *args.methods]:
            run_dir = out / f"seed{seed}" / method
            for rnd in args.rounds if method != "pretrain" else [0]:
                key = f"seed{seed}/{method}/round-{rnd}"
                if key in results or not (run_dir / "checkpoints" / f"round-{rnd}").exists():
                    continue
                parts = RunDir.existing(run_dir).load_checkpoint(rnd)
                generator.load_state_dict(parts["generator"])
                t0 = time.time()
                metrics = task.evaluate(Components(task=task, generator=generator), "reeval")
                results[key] = {**metrics, "eval_s": time.time() - t0,
                                "users": len(task.eval_sets["test"])}
                merged = json.loads(dest.read_text()) if dest.exists() else {}  # other workers
                merged[key] = results[key]
                dest.write_text(json.dumps(merged, indent=1))
                print(key, {k: round(v, 4) for k, v in metrics.items() if "test/" in k},
                      f"{time.time() - t0:.0f}s", flush=True)
    summarise(json.loads(dest.read_text()) if dest.exists() else results, args)


def summarise(results: dict, args: argparse.Namespace) -> None:
    print(f"\ntest split, all users, mean ± std over seeds {args.seeds} (×100)")
    print("| method | round | " + " | ".join(KEYS) + " | valid hr@10 |")
    print("|---|---|" + "---|" * (len(KEYS) + 1))
    for method in ["pretrain", *args.methods]:
        for rnd in args.rounds if method != "pretrain" else [0]:
            rows = [results.get(f"seed{s}/{method}/round-{rnd}") for s in args.seeds]
            rows = [r for r in rows if r]
            if not rows:
                continue
            cells = []
            for k in (*(f"test/{k}" for k in KEYS), "valid/hr@10"):
                values = [100 * r[k] for r in rows]
                std = statistics.stdev(values) if len(values) > 1 else 0.0
                cells.append(f"{statistics.fmean(values):.2f} ± {std:.2f}")
            print(f"| {method} | {rnd} | " + " | ".join(cells) + f" | (n={len(rows)})")


if __name__ == "__main__":
    main()

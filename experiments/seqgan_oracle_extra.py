"""Two controls for the oracle Table 1, from the same MLE start as experiments/seqgan_oracle.py:

* a longer MLE baseline (``--mle-epochs`` more epochs, ``recipes/mle_oracle.yaml``), with its
  temperature sweep: is SeqGAN's gain more than "more training"?
* ``recipes/reinforce_baseline.yaml`` (REINFORCE with a batch-mean baseline instead of SeqGAN's
  raw Q values), same rounds.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python experiments/seqgan_oracle_extra.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from advx.runner import run_recipe
from seqgan_oracle import CPU_TASK, MLE_RECIPE, ROOT, log, read_rounds, save_results, sweep


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mle-epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "runs/seqgan_oracle_exp")
    parser.add_argument("--results", type=Path,
                        default=ROOT / "docs/results/seqgan_oracle_extra.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pretrained = args.out / "mle_pretrained.pt"
    results: dict = {"config": {k: str(v) for k, v in vars(args).items()}}

    log(f"REINFORCE + batch-mean baseline, {args.rounds} rounds")
    t0 = time.perf_counter()
    run = run_recipe(
        ROOT / "recipes/reinforce_baseline.yaml",
        [f"generator.init_from={pretrained}", "loop.pretrain_generator=false",
         f"loop.rounds={args.rounds}"],
        run_dir=args.out / "reinforce_batch_mean_seed0",
    )
    results["reinforce_batch_mean"] = {"rounds": read_rounds(run.run_dir),
                                       "final": run.summary["final"],
                                       "wall_s": time.perf_counter() - t0}
    log(f"batch-mean baseline: {run.summary['final'].get('nll_oracle')}")
    save_results(results, args.results)

    log(f"MLE +{args.mle_epochs} epochs")
    t0 = time.perf_counter()
    mle = run_recipe(
        MLE_RECIPE,
        [*CPU_TASK, f"generator.init_from={pretrained}", f"generator.epochs={args.mle_epochs}"],
        run_dir=args.out / f"mle_plus{args.mle_epochs}_seed0",
    )
    results["mle_long"] = {"epochs_extra": args.mle_epochs, "final": mle.summary["final"],
                           "wall_s": time.perf_counter() - t0}
    log(f"MLE +{args.mle_epochs}: {mle.summary['final'].get('nll_oracle')}")
    ckpt = mle.run_dir / "checkpoints/round-0/generator.pt"
    results["mle_long"]["sweep"] = sweep(MLE_RECIPE, [*CPU_TASK, f"generator.init_from={ckpt}"],
                                         args.out)
    save_results(results, args.results)
    log("done")


if __name__ == "__main__":
    main()

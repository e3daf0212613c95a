"""SeqGAN vs MLE on Texygen's COCO captions (BLEU-2..5, self-BLEU-2..5, NLL-test), CPU-sized.

Everything goes through ``advx run`` (``run_recipe``) with ``recipes/seqgan_coco.yaml`` and the
CPU overrides below:
1. MLE: ``loop.rounds=0`` (pre-training only) for ``--mle-epochs`` epochs;
2. SeqGAN from that checkpoint (``generator.init_from``, ``loop.pretrain_generator=false``);
3. a temperature sweep of both final generators (BLEU vs self-BLEU, Caccia et al. 2020).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python experiments/seqgan_coco.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from advx.build import build_components
from advx.runner import prepare_recipe, run_recipe
from seqgan_oracle import log, save_results

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes/seqgan_coco.yaml"
TEMPERATURES = [0.8, 1.2]
CPU = [
    "task.num_eval_samples=500",   # Texygen scores more samples; 500 hypotheses vs 10k refs
    "task.nll_test_max=2000",      # NLL-test on the first 2,000 test captions
    "task.num_fakes=1000", "task.d_real=1000",
    "classifier.emb_dim=32", "classifier.num_filters=[25,50,50,50,50,25,25,25,25,25,40,40]",
    "classifier.lr=1e-3", "classifier.epochs=1", "classifier.valid_fraction=0.1",
    "reward.rollouts=4", "loop.pretrain_d_steps=5", "loop.d_steps=1",
]


def sweep(checkpoint: Path, out: Path) -> dict:
    spec = prepare_recipe(RECIPE, [*CPU, f"generator.init_from={checkpoint}"])
    components, _ = build_components(spec, out)
    components.task.config.temperatures = TEMPERATURES
    return components.task.evaluate(components, "sweep")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mle-epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs/seqgan_coco_exp")
    parser.add_argument("--results", type=Path, default=ROOT / "docs/results/seqgan_coco.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results: dict = {"config": {k: str(v) for k, v in vars(args).items()}, "cpu_overrides": CPU}

    log("MLE pre-training")
    t0 = time.perf_counter()
    mle = run_recipe(RECIPE, [*CPU, f"seed={args.seed}", f"generator.epochs={args.mle_epochs}",
                              "loop.rounds=0", "loop.pretrain_d_steps=0"], run_dir=args.out / "mle")
    results["mle"] = {"final": mle.summary["final"], "wall_s": time.perf_counter() - t0}
    log(f"MLE: {mle.summary['final']}")
    mle_ckpt = mle.run_dir / "checkpoints/round-0/generator.pt"
    save_results(results, args.results)

    log("SeqGAN")
    t0 = time.perf_counter()
    seqgan = run_recipe(
        RECIPE,
        [*CPU, f"seed={args.seed}", f"generator.init_from={mle_ckpt}",
         "loop.pretrain_generator=false", f"loop.rounds={args.rounds}",
         f"loop.eval_every={args.rounds}"],
        run_dir=args.out / "seqgan",
    )
    results["seqgan"] = {"final": seqgan.summary["final"], "wall_s": time.perf_counter() - t0}
    log(f"SeqGAN: {seqgan.summary['final']}")
    save_results(results, args.results)

    log("temperature sweep")
    t0 = time.perf_counter()
    seqgan_ckpt = seqgan.run_dir / f"checkpoints/round-{args.rounds}/generator.pt"
    results["sweep"] = {"mle": sweep(mle_ckpt, args.out), "seqgan": sweep(seqgan_ckpt, args.out)}
    results["sweep_s"] = time.perf_counter() - t0
    save_results(results, args.results)
    log("done")


if __name__ == "__main__":
    main()

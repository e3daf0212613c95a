"""SeqGAN from a longer MLE start (5 + 10 = 15 epochs, the run of seqgan_oracle_extra.py):
3 seeds of 20 adversarial batches vs 1 more MLE epoch, and the temperature sweep of seed 0.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python experiments/seqgan_oracle_from15.py

Seed 0's SeqGAN run is the CLI run
``advx run recipes/seqgan_oracle_cpu.yaml generator.init_from=<mle15> loop.pretrain_generator=false
loop.rounds=20 seed=0 --run-dir runs/seqgan_oracle_exp/seqgan_from_mle15_seed0``; it is re-used
when present.
"""

from __future__ import annotations

import json
import time

import torch
from advx.runner import run_recipe
from seqgan_oracle import CPU_RECIPE, CPU_TASK, MLE_RECIPE, ROOT, log, read_rounds, sweep

OUT = ROOT / "runs/seqgan_oracle_exp"
START = OUT / "mle_plus10_seed0/checkpoints/round-0/generator.pt"
RESULTS = ROOT / "docs/results/seqgan_oracle_from15.json"


def main() -> None:
    torch.set_num_threads(1)
    results: dict = {"start": str(START.relative_to(ROOT)), "runs": {}}
    for seed in (0, 1, 2):
        run_dir = OUT / f"seqgan_from_mle15_seed{seed}"
        t0 = time.perf_counter()
        if not (run_dir / "summary.json").is_file():
            run_recipe(CPU_RECIPE, [f"seed={seed}", f"generator.init_from={START}",
                                    "loop.pretrain_generator=false", "loop.rounds=20"],
                       run_dir=run_dir)
        seqgan_s = time.perf_counter() - t0
        summary = json.loads((run_dir / "summary.json").read_text())
        t0 = time.perf_counter()
        mle = run_recipe(MLE_RECIPE, [*CPU_TASK, f"seed={seed}", f"generator.init_from={START}",
                                      "generator.epochs=1"], run_dir=OUT / f"mle16_seed{seed}")
        entry = {"seqgan": {"rounds": read_rounds(run_dir), "final": summary["final"],
                            "wall_s": summary.get("wall_s", seqgan_s)},
                 "mle": {"final": mle.summary["final"], "wall_s": time.perf_counter() - t0}}
        log(f"seed {seed}: SeqGAN {summary['final']['nll_oracle']:.3f} "
            f"MLE+1 {mle.summary['final']['nll_oracle']:.3f}")
        if seed == 0:
            ckpt = run_dir / "checkpoints/round-20/generator.pt"
            overrides = [*CPU_TASK, f"generator.init_from={ckpt}"]
            entry["sweep"] = {"seqgan": sweep(MLE_RECIPE, overrides, OUT)}
        results["runs"][str(seed)] = entry
        RESULTS.write_text(json.dumps(results, indent=1, default=float))
    log("done")


if __name__ == "__main__":
    main()

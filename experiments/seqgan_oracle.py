"""SeqGAN Table 1 on the synthetic oracle, sized for a shared CPU.

1. MLE pre-training, one epoch at a time through the ``lstm`` generator's ``sft``, evaluating
   NLL-oracle / NLL-test after every epoch (the loop evaluates only after the whole ``sft``);
   the untrained generator is Table 1's "random" row. Saved as the shared starting point.
2. For every seed, from that checkpoint:
   * SeqGAN: ``advx run recipes/seqgan_oracle_cpu.yaml generator.init_from=<mle>
     loop.pretrain_generator=false seed=<s>`` through the core loop (discriminator
     pre-training, rounds of g-step + d-steps, evaluation every 5 rounds);
   * MLE: the same generator trained ``--mle-extra`` more MLE epochs (recipes/mle_oracle.yaml
     with the CPU task sizes), the baseline with at least the adversarial phase's wall time.
3. Temperature sweep of each final model (NLL-oracle vs NLL-test), for Caccia et al.'s
   quality/diversity curve.

Writes docs/results/seqgan_oracle.json and docs/results/seqgan_oracle_*.png.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python experiments/seqgan_oracle.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from advx.build import build_components
from advx.rundir import atomic_write_text
from advx.runner import prepare_recipe, run_recipe

ROOT = Path(__file__).resolve().parents[1]
CPU_RECIPE = ROOT / "recipes/seqgan_oracle_cpu.yaml"
MLE_RECIPE = ROOT / "recipes/mle_oracle.yaml"
CPU_TASK = ["task.num_test=2000", "task.num_eval_samples=1000"]
TEMPERATURES = [0.8, 0.9, 1.2]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def mle_pretrain(epochs: int, out: Path, seed: int) -> dict:
    spec = prepare_recipe(MLE_RECIPE, [*CPU_TASK, f"seed={seed}", "generator.epochs=1"])
    torch.manual_seed(seed)
    components, _ = build_components(spec, out)
    task, gen = components.task, components.generator
    curve = []
    started = time.perf_counter()
    metrics = task.evaluate(components, "random")
    curve.append({"epoch": 0, **metrics, "wall_s": 0.0})
    log(f"random generator: {metrics}")
    train_s = 0.0
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        loss = gen.sft(task.generator_train())["sft/loss"]
        train_s += time.perf_counter() - t0
        metrics = task.evaluate(components, f"mle-{epoch}")
        curve.append({"epoch": epoch, "train_loss": loss, **metrics,
                      "wall_s": time.perf_counter() - started})
        log(f"MLE epoch {epoch}: {metrics} ({train_s:.0f}s training)")
    torch.save(gen.state_dict(), out / "mle_pretrained.pt")
    return {"curve": curve, "train_s": train_s, "wall_s": time.perf_counter() - started,
            "oracle_entropy": task.oracle_entropy()}


def read_rounds(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("kind") == "round"]


def sweep(recipe: Path, overrides: list[str], out: Path) -> dict:
    """NLL-oracle and NLL-test of a saved generator at each temperature."""
    spec = prepare_recipe(recipe, overrides)
    components, _ = build_components(spec, out)
    components.task.config.temperatures = TEMPERATURES
    return components.task.evaluate(components, "sweep")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--mle-epochs", type=int, default=15)
    parser.add_argument("--mle-extra", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--out", type=Path, default=ROOT / "runs/seqgan_oracle_exp")
    parser.add_argument("--results", type=Path, default=ROOT / "docs/results/seqgan_oracle.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"config": vars(args) | {"out": str(args.out), "results": str(args.results)}}

    log("phase 1: MLE pre-training")
    results["mle_pretrain"] = mle_pretrain(args.mle_epochs, args.out, seed=0)
    pretrained = args.out / "mle_pretrained.pt"
    save_results(results, args.results)

    results["runs"] = {}
    for seed in args.seeds:
        log(f"phase 2: SeqGAN seed {seed}")
        t0 = time.perf_counter()
        seqgan = run_recipe(
            CPU_RECIPE,
            [f"seed={seed}", f"generator.init_from={pretrained}",
             "loop.pretrain_generator=false", f"loop.rounds={args.rounds}"],
            run_dir=args.out / f"seqgan_seed{seed}",
        )
        seqgan_s = time.perf_counter() - t0
        rounds = read_rounds(seqgan.run_dir)
        ckpts = (seqgan.run_dir / "checkpoints").glob("round-*")
        last = max(int(p.name.split("-")[1]) for p in ckpts)
        seqgan_ckpt = seqgan.run_dir / f"checkpoints/round-{last}/generator.pt"
        final = seqgan.summary["final"].get("nll_oracle")
        log(f"SeqGAN seed {seed}: final {final} in {seqgan_s:.0f}s")

        log(f"phase 2: MLE continuation seed {seed}")
        t0 = time.perf_counter()
        mle = run_recipe(
            MLE_RECIPE,
            [*CPU_TASK, f"seed={seed}", f"generator.init_from={pretrained}",
             f"generator.epochs={args.mle_extra}"],
            run_dir=args.out / f"mle_seed{seed}",
        )
        mle_s = time.perf_counter() - t0
        mle_ckpt = mle.run_dir / "checkpoints/round-0/generator.pt"
        log(f"MLE seed {seed}: final {mle.summary['final'].get('nll_oracle')} in {mle_s:.0f}s")

        entry = {
            "seqgan": {"rounds": rounds, "final": seqgan.summary["final"], "wall_s": seqgan_s},
            "mle": {"final": mle.summary["final"], "wall_s": mle_s},
        }
        if seed == args.seeds[0]:
            log("phase 3: temperature sweep")
            t0 = time.perf_counter()
            entry["sweep"] = {
                "seqgan": sweep(MLE_RECIPE, [*CPU_TASK, f"generator.init_from={seqgan_ckpt}"],
                                args.out),
                "mle": sweep(MLE_RECIPE, [*CPU_TASK, f"generator.init_from={mle_ckpt}"], args.out),
            }
            entry["sweep_s"] = time.perf_counter() - t0
        results["runs"][str(seed)] = entry
        save_results(results, args.results)
    log("done")


def save_results(results: dict, path: Path) -> None:
    """Write the results JSON atomically: a driver stopped mid-write keeps the last copy."""
    atomic_write_text(path, json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()

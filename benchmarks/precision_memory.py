"""Step time and peak memory of the improvement step: fp32 vs bf16, full fine-tuning vs LoRA.

    python3 benchmarks/precision_memory.py --device cuda               # t5-base shape
    python3 benchmarks/precision_memory.py --device cpu --shape tiny   # smoke test (no memory)

Builds the ``ppo_cls_loss`` components once per configuration (seq2seq generator with random
weights at the t5-base shape: d_model 768, 12+12 layers, 12 heads, d_ff 3072; tiny encoder
classifier; cls_loss; PPO) and times whole improvement steps as ``advx.loop`` runs them
(sample, π_ref, reward, update), the first one a warm-up. On CUDA, peak memory is
``torch.cuda.max_memory_allocated`` over the timed steps. Writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHAPES = {
    "t5-base": ["generator.d_model=768", "generator.num_layers=12", "generator.num_heads=12",
                "generator.d_kv=64", "generator.d_ff=3072", "generator.vocab_size=8000"],
    "tiny": [],
}
CONFIGS = {
    "fp32": [],
    "bf16": ["precision=bf16"],
    "fp32+lora": ["generator.lora={r: 16, alpha: 32, target_modules: [q, v]}"],
    "bf16+lora": ["precision=bf16", "generator.lora={r: 16, alpha: 32, target_modules: [q, v]}"],
}


def measure(overrides: list[str], device: str, steps: int) -> dict:
    import numpy as np
    import torch
    from advx.build import build_components
    from advx.components import StepContext
    from advx.loop import seed_everything
    from advx.runner import prepare_recipe

    spec = prepare_recipe(REPO / "recipes" / "ppo_cls_loss.yaml", [*overrides, f"device={device}"])
    seed_everything(spec.seed)
    cuda = device.startswith("cuda")
    with tempfile.TemporaryDirectory() as run_dir:
        c, _ = build_components(spec, Path(run_dir))
        reference = c.generator.reference()
        rng = np.random.default_rng(0)
        times = []
        for step in range(steps + 1):
            if cuda:
                torch.cuda.synchronize()
                if step == 1:
                    torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            prompts = c.task.rl_prompts(spec.loop.batch_size, rng)
            rollout = c.generator.sample(prompts, n=1, temperature=1.0)
            with torch.no_grad():
                rollout.ref_logprobs = reference.policy_outputs(rollout).logprobs
            ctx = StepContext(task=c.task, generator=c.generator, classifier=c.classifier,
                              reference=reference, round=1, step=step, rng=rng)
            c.optimizer.update(rollout, c.reward(rollout, ctx), ctx)
            if cuda:
                torch.cuda.synchronize()
            if step:
                times.append(time.perf_counter() - start)
        trainable = sum(p.numel() for p in c.generator.parameters() if p.requires_grad)
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    del c, reference
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return {"step_seconds_median": statistics.median(times), "step_seconds": times,
            "peak_memory_mib": peak, "trainable_generator_parameters": trainable}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="t5-base")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"
                                             / "precision_memory.json"))
    args = parser.parse_args()
    os.environ.setdefault("ADVX_LOAD_PLUGINS",
                          "seq2seq,cls_loss,ppo,product_relevance,encoder_classifier")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = {}
    for name in args.configs:
        results[name] = measure([*SHAPES[args.shape], *CONFIGS[name]], args.device, args.steps)
        r = results[name]
        peak = "n/a" if r["peak_memory_mib"] is None else f"{r['peak_memory_mib']:.0f} MiB"
        print(f"{name:10s} step {r['step_seconds_median']:.3f} s  peak {peak}  "
              f"trainable {r['trainable_generator_parameters']:,}")
    report = {"device": args.device, "shape": args.shape, "timed_steps": args.steps,
              "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

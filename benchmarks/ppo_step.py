"""Wall time of one PPO iteration of the cold-start recipe, split by phase, beside the bare
cost of the same batch's teacher-forced forward and forward+backward passes, in one process.

    .venv/bin/python benchmarks/ppo_step.py                      # recipes/ppo_cls_loss.yaml
    .venv/bin/python benchmarks/ppo_step.py generator.max_new_tokens=24 loop.batch_size=32
    .venv/bin/python benchmarks/ppo_step.py --recipe my.yaml --repeats 5 --threads 2

Phases, exactly as ``advx.loop`` runs them:
    sample     generator.sample(prompts, n)            KV-cached generate + one teacher-forced
                                                       pass for behaviour log-probs and values
    reference  reference.policy_outputs(rollout)       no grad
    reward     reward(rollout, ctx)                    cls_loss: classifier.loss + arithmetic
    update     optimizer.update(rollout, rewards, ctx) epochs × minibatches of forward+backward

Ratios to check:
    update / (passes × bare fwd+bwd) ≈ 1  → the update recomputes nothing the rollout holds
    reference / bare forward ≈ 1          → one forward pass
    sample(no cache) / sample(cache) > 1  → generate really uses the KV cache

The generator is NOT fine-tuned first by default (``--sft-epochs 0``): random weights rarely
emit EOS, so responses run to ``max_new_tokens``, the worst case; the mean length is reported.
Results: a table on stdout and JSON (``--out``, default benchmarks/results/ppo_step.json).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

# Only the plugins this benchmark needs (others may be mid-development in a shared checkout).
os.environ.setdefault(
    "ADVX_LOAD_PLUGINS", "seq2seq,cls_loss,ppo,product_relevance,encoder_classifier"
)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from advx.build import build_components
from advx.components import StepContext
from advx.loop import seed_everything
from advx.rollout import masked_mean
from advx.runner import prepare_recipe
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RECIPE = REPO / "recipes" / "ppo_cls_loss.yaml"
# Used only when the recipe file does not exist: the same components at tiny size.
FALLBACK = {
    "name": "ppo_step_benchmark",
    "seed": 0,
    "device": "cpu",
    "task": {"name": "product_relevance", "preset": "demo"},
    "generator": {"name": "seq2seq", "model": "tiny", "max_new_tokens": 16},
    "classifier": {"name": "encoder", "model": "tiny", "epochs": 1},
    "reward": {"name": "cls_loss", "alpha": 0.7, "beta": 0.05},
    "optimizer": {"name": "ppo", "epochs": 4},
    "loop": {"batch_size": 16, "samples_per_prompt": 1},
}


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float], Any]:
    """Median wall time of ``fn`` over ``repeats`` runs (after one warm-up run)."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="recipe overrides, dotted.key=value")
    parser.add_argument("--recipe", default=str(DEFAULT_RECIPE))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sft-epochs", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "ppo_step.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    source = args.recipe if Path(args.recipe).exists() else OmegaConf.create(FALLBACK)
    spec = prepare_recipe(source, args.overrides)
    seed_everything(spec.seed)
    with TemporaryDirectory() as tmp:
        components, _ = build_components(spec, Path(tmp))
        report = benchmark(components, spec, args)
    report["recipe"] = args.recipe if isinstance(source, str) else "built-in fallback"
    report["overrides"] = args.overrides
    print_table(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return report


def benchmark(components: Any, spec: Any, args: argparse.Namespace) -> dict[str, Any]:
    task, generator, classifier = components.task, components.generator, components.classifier
    reward, optimizer, loop = components.reward, components.optimizer, spec.loop
    rng = np.random.default_rng(spec.seed)

    setup = time.perf_counter()
    if args.sft_epochs > 0:
        generator.config.epochs = args.sft_epochs
        generator.sft(task.generator_train())
    classifier.fit(task.classifier_train())
    reference = generator.reference()
    setup = time.perf_counter() - setup

    prompts = task.rl_prompts(loop.batch_size, rng)
    n, temperature = loop.samples_per_prompt, loop.temperature

    def ctx() -> StepContext:
        return StepContext(task=task, generator=generator, classifier=classifier,
                           reference=reference, round=1, step=0, rng=rng)  # fmt: skip

    def sample(use_cache: bool = True):
        return generator.sample(prompts, n=n, temperature=temperature, use_cache=use_cache)

    def ref_logprobs(rollout):
        with torch.no_grad():
            return reference.policy_outputs(rollout).logprobs

    # --- one iteration, phase by phase (repeated; each repeat is a full iteration) ----------
    phases: dict[str, list[float]] = {"sample": [], "reference": [], "reward": [], "update": []}
    lengths, passes = [], []
    ppo_metrics: dict[str, float] = {}
    for i in range(args.repeats + 1):  # the first iteration is a warm-up, not recorded
        clock = {}
        start = time.perf_counter()
        rollout = sample()
        clock["sample"] = time.perf_counter() - start
        start = time.perf_counter()
        rollout.ref_logprobs = ref_logprobs(rollout)
        clock["reference"] = time.perf_counter() - start
        start = time.perf_counter()
        rewards = reward(rollout, ctx())
        clock["reward"] = time.perf_counter() - start
        start = time.perf_counter()
        ppo_metrics = optimizer.update(rollout, rewards, ctx())
        clock["update"] = time.perf_counter() - start
        if i == 0:
            continue
        for key, value in clock.items():
            phases[key].append(value)
        lengths.append(rollout.lengths.float().mean().item())
        passes.append(forward_backward_passes(optimizer, rollout, ppo_metrics))

    # --- bare costs on one rollout of the same batch ----------------------------------------
    rollout = sample()
    rollout.ref_logprobs = ref_logprobs(rollout)

    def forward() -> None:
        with torch.no_grad():
            generator.policy_outputs(rollout)

    def forward_backward() -> None:
        out = generator.policy_outputs(rollout)
        loss = masked_mean(out.logprobs, rollout.response_mask)
        if out.values is not None:
            loss = loss + masked_mean(out.values, rollout.response_mask)
        loss.backward()
        for p in generator.parameters():
            p.grad = None

    bare_fwd, _, _ = timed(forward, args.repeats)
    bare_fwdbwd, _, _ = timed(forward_backward, args.repeats)
    cls_loss, _, _ = timed(lambda: classifier.loss(rollout.samples()), args.repeats)

    # --- KV cache check: the same sampling with the cache switched off ----------------------
    cached, _, r_cached = timed(lambda: sample(True), args.repeats)
    uncached, _, r_uncached = timed(lambda: sample(False), args.repeats)

    med = {k: statistics.median(v) for k, v in phases.items()}
    iteration = sum(med.values())
    n_passes = statistics.median(passes)
    return {
        "device": str(generator.device),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "repeats": args.repeats,
        "batch": {
            "rows": rollout.batch_size,
            "prompts": len(prompts),
            "samples_per_prompt": n,
            "max_new_tokens": generator.config.max_new_tokens,
            "mean_response_tokens": statistics.mean(lengths),
            "mean_prompt_tokens": rollout.prompt_mask.sum(-1).float().mean().item(),
        },
        "model": {
            "generator": generator.config.model,
            "generator_parameters": sum(p.numel() for p in generator.parameters()),
            "sft_epochs": args.sft_epochs,
        },
        "ppo": {
            "epochs": optimizer.config.epochs,
            "minibatch_size": optimizer.config.minibatch_size or rollout.batch_size,
            "forward_backward_passes": n_passes,
            "last_update_metrics": ppo_metrics,
        },
        "seconds": {
            **{f"phase/{k}": v for k, v in med.items()},
            "iteration": iteration,
            "bare/forward": bare_fwd,
            "bare/forward_backward": bare_fwdbwd,
            "bare/classifier_loss": cls_loss,
            "sample/kv_cache": cached,
            "sample/no_cache": uncached,
            "setup(classifier fit, reference copy)": setup,
        },
        "ratios": {
            "update / (passes x bare fwd+bwd)": med["update"] / (n_passes * bare_fwdbwd),
            "reference / bare forward": med["reference"] / bare_fwd,
            "sample / bare forward": med["sample"] / bare_fwd,
            "reward / bare classifier loss": med["reward"] / cls_loss,
            "iteration / bare fwd+bwd": iteration / bare_fwdbwd,
            "sample no-cache / kv-cache": uncached / cached,
        },
        "share_of_iteration": {k: v / iteration for k, v in med.items()},
        "kv_cache_check_lengths": {
            "kv_cache": r_cached.lengths.float().mean().item(),
            "no_cache": r_uncached.lengths.float().mean().item(),
        },
    }


def forward_backward_passes(optimizer: Any, rollout: Any, metrics: dict[str, float]) -> float:
    """Teacher-forced forward+backward passes an update made, in full-batch equivalents.

    Every minibatch is one pass over its rows, so the epochs completed (early stop counted)
    are full-batch passes; a partial last epoch is not distinguished (target_kl off here)."""
    epochs = metrics.get("ppo/epochs", float(getattr(optimizer.config, "epochs", 1)))
    return max(float(epochs), 1.0)


def print_table(report: dict[str, Any]) -> None:
    console = Console()
    table = Table(title="one PPO iteration (median seconds)")
    table.add_column("what")
    table.add_column("seconds", justify="right")
    table.add_column("share / ratio", justify="right")
    sec = report["seconds"]
    for key, share in report["share_of_iteration"].items():
        table.add_row(f"phase: {key}", f"{sec['phase/' + key]:.4f}", f"{100 * share:.1f} %")
    table.add_row("iteration", f"{sec['iteration']:.4f}", "")
    for key in ("bare/forward", "bare/forward_backward", "bare/classifier_loss",
                "sample/kv_cache", "sample/no_cache"):  # fmt: skip
        table.add_row(key, f"{sec[key]:.4f}", "")
    for key, value in report["ratios"].items():
        table.add_row(key, "", f"{value:.2f}" if math.isfinite(value) else str(value))
    console.print(table)
    b = report["batch"]
    console.print(
        f"batch {b['rows']} rows, {b['mean_prompt_tokens']:.1f} prompt tokens, "
        f"{b['mean_response_tokens']:.1f}/{b['max_new_tokens']} response tokens; "
        f"{report['model']['generator_parameters']:,} generator parameters; PPO "
        f"{report['ppo']['epochs']} epochs × minibatch {report['ppo']['minibatch_size']}; "
        f"device {report['device']}, {report['torch_threads']} thread(s)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])

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
    update / (passes × bare fwd+bwd+AdamW step) ≈ 1  → the update recomputes nothing the
                                           rollout holds (no extra sampling or reference pass)
    reference / bare forward ≈ 1          → one forward pass
    sample(no cache) / sample(cache) > 1  → generate really uses the KV cache

The generator is NOT fine-tuned first by default (``--sft-epochs 0``): random weights rarely
emit EOS, so responses run to ``max_new_tokens``, the worst case; the mean length is reported.
Results: a table on stdout and JSON (``--out``, default benchmarks/results/ppo_step.json).
"""

from __future__ import annotations

import argparse
import json
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
from transformers.utils import logging as hf_logging

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


class Clock:
    """Wall and process-CPU seconds of named blocks, one list per name (one entry per repeat).

    CPU time is reported beside wall time because this machine is shared: wall time includes
    waiting for a core, CPU time (1 torch thread) is the work done."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    def __call__(self, name: str, fn: Callable[[], Any]) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        self.wall.setdefault(name, []).append(time.perf_counter() - wall)
        self.cpu.setdefault(name, []).append(time.process_time() - cpu)
        return result

    def median(self, which: str = "wall") -> dict[str, float]:
        table = self.wall if which == "wall" else self.cpu
        return {k: statistics.median(v) for k, v in table.items()}

    def ratio(self, num: str, den: str, which: str = "wall", scale: float = 1.0) -> float:
        """Median over repeats of num/den measured in the same repeat (robust to load drift)."""
        table = self.wall if which == "wall" else self.cpu
        return statistics.median(
            a / (scale * b) for a, b in zip(table[num], table[den], strict=True)
        )


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
    hf_logging.disable_progress_bar()

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

    adamw = torch.optim.AdamW(generator.parameters(), lr=1e-12)  # moves weights negligibly

    def forward(rollout) -> None:
        with torch.no_grad():
            generator.policy_outputs(rollout)

    def forward_backward(rollout, step: bool) -> None:
        out = generator.policy_outputs(rollout)
        loss = masked_mean(out.logprobs, rollout.response_mask)
        if out.values is not None:
            loss = loss + masked_mean(out.values, rollout.response_mask)
        adamw.zero_grad(set_to_none=True)
        loss.backward()
        if step:
            torch.nn.utils.clip_grad_norm_(generator.parameters(), 1.0)
            adamw.step()
        adamw.zero_grad(set_to_none=True)

    # Each repeat: one full iteration phase by phase, then the bare passes on the SAME rollout,
    # then sampling with and without the KV cache; repeat 0 is a warm-up and is dropped.
    clock, lengths, passes, cache_lengths = Clock(), [], [], {"kv_cache": [], "no_cache": []}
    ppo_metrics: dict[str, float] = {}
    load_before = os.getloadavg()[0]
    for i in range(args.repeats + 1):
        if i == 1:
            clock = Clock()
        rollout = clock("phase/sample", sample)
        rollout.ref_logprobs = clock("phase/reference", lambda r=rollout: ref_logprobs(r))
        rewards = clock("phase/reward", lambda r=rollout: reward(r, ctx()))
        ppo_metrics = clock(
            "phase/update", lambda r=rollout, w=rewards: optimizer.update(r, w, ctx())
        )
        clock("bare/forward", lambda r=rollout: forward(r))
        clock("bare/forward_backward", lambda r=rollout: forward_backward(r, False))
        clock("bare/forward_backward_adamw_step", lambda r=rollout: forward_backward(r, True))
        clock("bare/classifier_loss", lambda r=rollout: classifier.loss(r.samples()))
        cached = clock("sample/kv_cache", lambda: sample(True))
        uncached = clock("sample/no_cache", lambda: sample(False))
        if i > 0:
            lengths.append(rollout.lengths.float().mean().item())
            passes.append(forward_backward_passes(optimizer, rollout, ppo_metrics))
            cache_lengths["kv_cache"].append(cached.lengths.float().mean().item())
            cache_lengths["no_cache"].append(uncached.lengths.float().mean().item())

    phases = ("sample", "reference", "reward", "update")
    report: dict[str, Any] = {
        "device": str(generator.device),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": load_before,
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
            "setup_seconds(classifier fit, reference copy)": setup,
        },
        "ppo": {
            "epochs": optimizer.config.epochs,
            "minibatch_size": optimizer.config.minibatch_size or rollout.batch_size,
            "forward_backward_passes": statistics.median(passes),
            "last_update_metrics": ppo_metrics,
        },
        "kv_cache_check_mean_lengths": {k: statistics.mean(v) for k, v in cache_lengths.items()},
    }
    n_passes = statistics.median(passes)
    for which in ("wall", "cpu"):
        med = clock.median(which)
        iteration = sum(med[f"phase/{k}"] for k in phases)
        report[f"{which}_seconds"] = {**med, "iteration": iteration}
        report[f"{which}_share_of_iteration"] = {k: med[f"phase/{k}"] / iteration for k in phases}
        report[f"{which}_ratios"] = {
            "update / (passes x bare fwd+bwd)": clock.ratio(
                "phase/update", "bare/forward_backward", which, n_passes
            ),
            "update / (passes x bare fwd+bwd+AdamW)": clock.ratio(
                "phase/update", "bare/forward_backward_adamw_step", which, n_passes
            ),
            "reference / bare forward": clock.ratio("phase/reference", "bare/forward", which),
            "sample / bare forward": clock.ratio("phase/sample", "bare/forward", which),
            "reward / bare classifier loss": clock.ratio(
                "phase/reward", "bare/classifier_loss", which
            ),
            "iteration / bare fwd+bwd": iteration / med["bare/forward_backward"],
            "sample no-cache / kv-cache": clock.ratio("sample/no_cache", "sample/kv_cache", which),
        }
    return report


def forward_backward_passes(optimizer: Any, rollout: Any, metrics: dict[str, float]) -> float:
    """Teacher-forced forward+backward passes an update made, in full-batch equivalents.

    Every minibatch is one pass over its rows, so the epochs completed (early stop counted)
    are full-batch passes; a partial last epoch is not distinguished (target_kl off here)."""
    epochs = metrics.get("ppo/epochs", float(getattr(optimizer.config, "epochs", 1)))
    return max(float(epochs), 1.0)


def print_table(report: dict[str, Any]) -> None:
    console = Console(width=120)
    table = Table(title="one PPO iteration (median over repeats)")
    table.add_column("what")
    for which in ("wall", "cpu"):
        table.add_column(f"{which} s", justify="right")
        table.add_column(f"{which} share/ratio", justify="right")
    wall, cpu = report["wall_seconds"], report["cpu_seconds"]
    for key in report["wall_share_of_iteration"]:
        table.add_row(
            f"phase: {key}",
            f"{wall['phase/' + key]:.4f}",
            f"{100 * report['wall_share_of_iteration'][key]:.1f} %",
            f"{cpu['phase/' + key]:.4f}",
            f"{100 * report['cpu_share_of_iteration'][key]:.1f} %",
        )
    table.add_row("iteration", f"{wall['iteration']:.4f}", "", f"{cpu['iteration']:.4f}", "")
    for key in wall:
        if key.startswith(("bare/", "sample/")):
            table.add_row(key, f"{wall[key]:.4f}", "", f"{cpu[key]:.4f}", "")
    for key, value in report["wall_ratios"].items():
        table.add_row(key, "", f"{value:.2f}", "", f"{report['cpu_ratios'][key]:.2f}")
    console.print(table)
    b = report["batch"]
    console.print(
        f"batch {b['rows']} rows, {b['mean_prompt_tokens']:.1f} prompt tokens, "
        f"{b['mean_response_tokens']:.1f}/{b['max_new_tokens']} response tokens; "
        f"{report['model']['generator_parameters']:,} generator parameters; PPO "
        f"{report['ppo']['epochs']} epochs × minibatch {report['ppo']['minibatch_size']}; "
        f"device {report['device']}, {report['torch_threads']} thread(s), "
        f"1-min load average {report['load_average_1min']:.1f}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])

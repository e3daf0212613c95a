"""Data-parallel throughput of the improvement step: 1 process vs 2, one thread each.

    .venv/bin/python benchmarks/scaling.py                 # t5-small shape, random weights
    .venv/bin/python benchmarks/scaling.py --steps 4 --batch 16 --processes 1 2

For each process count N the script launches ``torchrun --nproc_per_node N`` on itself; every
rank builds the ``ppo_cls_loss`` components (seq2seq generator at the t5-small shape: d_model
512, 6+6 layers, 8 heads, d_ff 2048; random weights, not fine-tuned, so responses run to
``max_new_tokens``; tiny encoder classifier; cls_loss reward; PPO) and runs the whole
improvement step exactly as ``advx.loop`` does in a data-parallel run: the global batch of
prompts, this rank's shard (``advx.distributed.shard``), sampling under the rank's seed,
π_ref log-probs, the reward, the PPO update with gradients all-reduced in ``guarded_step``.
The global batch is the same at every N. Throughput = sampled sequences of the global batch
per second of wall time (the slowest rank; the first step is a warm-up and not timed).

Writes ``benchmarks/results/scaling.json`` with both figures, the ratio and the machine's load
average before and after (the machine may be shared: a busy machine lowers the ratio).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
T5_SMALL = ["generator.d_model=512", "generator.num_layers=6", "generator.num_heads=8",
            "generator.d_kv=64", "generator.d_ff=2048", "generator.vocab_size=8000"]


class Phases:
    """Seconds per phase of the current step (``--phases``), by wrapping the functions the
    improvement step calls; wrappers nest (a phase's time includes the phases inside it)."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        self.steps: list[dict[str, float]] = []

    def add(self, name: str, seconds: float) -> None:
        self.current[name] = self.current.get(name, 0.0) + seconds

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - start)

        return timed

    def end_step(self, keep: bool) -> None:
        if keep:
            self.steps.append(self.current)
        self.current = {}

    def mean(self) -> dict[str, float]:
        names = dict.fromkeys(k for step in self.steps for k in step)
        return {k: sum(s.get(k, 0.0) for s in self.steps) / len(self.steps) for k in names}


def instrument(phases: Phases, c: Any, reference: Any) -> None:
    """Time the parts of the PPO update: the policy's teacher-forced forward (with the loss
    lines, which are tiny), backward, the gradient all-reduce, clipping + checks, and the
    AdamW step (through the optimizer's own step hooks)."""
    import advx.distributed
    import advx_ppo.ppo as ppo_module

    generator, optimizer = c.generator, c.optimizer
    generator._generate = phases.wrap("sample: generate", generator._generate)
    generator.policy_outputs = phases.wrap("update: forward", generator.policy_outputs)
    ppo_module.backward = phases.wrap("update: backward", ppo_module.backward)
    advx.distributed.all_reduce_gradients = phases.wrap(
        "update: all-reduce", advx.distributed.all_reduce_gradients)
    ppo_module.guarded_step = phases.wrap("update: guarded_step", ppo_module.guarded_step)
    started: list[float] = []
    optimizer.optimizer.register_step_pre_hook(
        lambda *_: started.append(time.perf_counter()))
    optimizer.optimizer.register_step_post_hook(
        lambda *_: phases.add("update: optimizer step", time.perf_counter() - started.pop()))


def worker(args: argparse.Namespace) -> None:
    os.environ.setdefault("ADVX_LOAD_PLUGINS",
                          "seq2seq,cls_loss,ppo,product_relevance,encoder_classifier")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch
    from advx.build import build_components
    from advx.components import StepContext
    from advx.distributed import (
        broadcast_object,
        init,
        is_distributed,
        rank,
        rank_seed,
        shard,
        world_size,
    )
    from advx.loop import seed_everything
    from advx.runner import prepare_recipe

    torch.set_num_threads(1)
    init()
    overrides = [*T5_SMALL, f"loop.batch_size={args.batch}",
                 f"generator.max_new_tokens={args.max_new_tokens}", "optimizer.epochs=1"]
    spec = prepare_recipe(REPO / "recipes" / "ppo_cls_loss.yaml", overrides)
    seed_everything(spec.seed)
    with tempfile.TemporaryDirectory() as own:
        run_dir = broadcast_object(own)  # the main process's folder, as in a run
        c, _ = build_components(spec, Path(run_dir))
        reference = c.generator.reference()
        rng = np.random.default_rng(0)
        phases = Phases()
        if args.phases:
            instrument(phases, c, reference)
        times = []
        for step in range(args.steps + 1):
            if is_distributed():
                torch.distributed.barrier()
            start = time.perf_counter()
            prompts = shard(c.task.rl_prompts(spec.loop.batch_size, rng))
            with rank_seed():
                mark = time.perf_counter()
                rollout = c.generator.sample(prompts, n=1, temperature=1.0)
                mark = lap(phases, "sample", mark)
                with torch.no_grad():
                    rollout.ref_logprobs = reference.policy_outputs(rollout).logprobs
                mark = lap(phases, "reference", mark)
                ctx = StepContext(task=c.task, generator=c.generator, classifier=c.classifier,
                                  reference=reference, round=1, step=step, rng=rng)
                rewards = c.reward(rollout, ctx)
                mark = lap(phases, "reward", mark)
                c.optimizer.update(rollout, rewards, ctx)
                mark = lap(phases, "update", mark)
            if is_distributed():
                torch.distributed.barrier()
            lap(phases, "barrier (waiting for the slower rank)", mark)
            if step > 0:  # the first step warms up allocators and caches
                times.append(time.perf_counter() - start)
            phases.end_step(keep=step > 0)
    per_rank = [phases.mean()]
    if is_distributed():
        per_rank = [None] * world_size()
        torch.distributed.all_gather_object(per_rank, phases.mean())
    if rank() == 0:
        result: dict[str, Any] = {
            "processes": world_size(), "step_seconds": times,
            "sequences_per_second": spec.loop.batch_size * len(times) / sum(times),
        }
        if args.phases:
            result["phase_seconds_per_rank"] = per_rank
        Path(args.out).write_text(json.dumps(result))


def lap(phases: Phases, name: str, since: float) -> float:
    """Add the seconds since ``since`` to phase ``name``; returns now."""
    now = time.perf_counter()
    phases.add(name, now - since)
    return now


def launch(n: int, args: argparse.Namespace) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = Path(tempfile.mkdtemp()) / "result.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join([str(REPO / "core"), str(REPO / "plugins")]))
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--nproc_per_node", str(n), "--master_port", str(port),
           __file__, "--worker", "--out", str(out), "--steps", str(args.steps),
           "--batch", str(args.batch), "--max-new-tokens", str(args.max_new_tokens),
           *(["--phases"] if args.phases else [])]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after 1 warm-up)")
    parser.add_argument("--batch", type=int, default=16, help="global prompts per step")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "scaling.json"))
    parser.add_argument("--phases", action="store_true",
                        help="also time each phase of the step (per rank) and print a table")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    load_before = os.getloadavg()
    results = {n: launch(n, args) for n in args.processes}
    load_after = os.getloadavg()
    base = results[args.processes[0]]["sequences_per_second"]
    for n, result in results.items():
        print(f"{n} process(es): {result['sequences_per_second']:.3f} sequences/s "
              f"(steps {', '.join(f'{t:.2f}' for t in result['step_seconds'])} s)")
    report = {
        "what": "improvement-step throughput (sample, reference, reward, PPO update), same "
                "global batch, one torch thread per process, t5-small shape, random weights",
        "global_batch": args.batch, "max_new_tokens": args.max_new_tokens,
        "timed_steps": args.steps,
        "results": {str(n): r for n, r in results.items()},
        "ratio": {str(n): r["sequences_per_second"] / base for n, r in results.items()},
        "load_average_before": load_before, "load_average_after": load_after,
        "cpu_count": os.cpu_count(), "machine": platform.platform(),
    }
    for n in args.processes[1:]:
        print(f"ratio {n}/{args.processes[0]}: {report['ratio'][str(n)]:.2f}x")
    print(f"load average before/after: {load_before} / {load_after}")
    if args.phases:
        report["phases"] = phase_table(results)
        print_phases(report["phases"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


def phase_table(results: dict[int, dict]) -> dict[str, dict[str, float]]:
    """Seconds per timed step of each phase: ``{phase: {"1": s, "2": s (slowest rank)}}``.

    With N processes each phase is the largest over the ranks (the step waits for the
    slowest); "update: all-reduce" includes the wait for the other rank's backward."""
    table: dict[str, dict[str, float]] = {}
    for n, result in results.items():
        for rank_phases in result["phase_seconds_per_rank"]:
            derived = dict(rank_phases)
            nested = ("update: all-reduce", "update: optimizer step")
            derived["update: clip + checks"] = derived.pop("update: guarded_step", 0.0) - sum(
                derived.get(k, 0.0) for k in nested)
            derived["update: other"] = derived.get("update", 0.0) - sum(
                derived.get(k, 0.0) for k in (*nested, "update: forward", "update: backward",
                                              "update: clip + checks"))
            for name, seconds in sorted(derived.items()):
                row = table.setdefault(name, {})
                row[str(n)] = max(row.get(str(n), 0.0), seconds)
    return table


def print_phases(table: dict[str, dict[str, float]]) -> None:
    columns = sorted({n for row in table.values() for n in row}, key=int)
    header = "".join(f"{n + ' proc':>10}" for n in columns)
    print(f"{'phase (s per step; slowest rank)':42}{header}")
    for name, row in table.items():
        print(f"{name:42}" + "".join(f"{row.get(n, 0.0):10.3f}" for n in columns))


if __name__ == "__main__":
    main()

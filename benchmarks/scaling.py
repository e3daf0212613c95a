"""Data-parallel throughput of the improvement step: 1 process vs 2, one thread each.

    .venv/bin/python benchmarks/scaling.py                 # t5-small shape, random weights
    .venv/bin/python benchmarks/scaling.py --steps 4 --batch 16 --processes 1 2
    .venv/bin/python benchmarks/scaling.py --steps 3 --phases --baseline main  # before/after

For each process count N the script launches ``torchrun --nproc_per_node N`` on itself; every
rank builds the ``ppo_cls_loss`` components (seq2seq generator at the t5-small shape: d_model
512, 6+6 layers, 8 heads, d_ff 2048; random weights, not fine-tuned, so responses run to
``max_new_tokens``; tiny encoder classifier; cls_loss reward; PPO) and runs the whole
improvement step exactly as ``advx.loop`` does in a data-parallel run: the global batch of
prompts, this rank's shard (``advx.distributed.shard``), sampling under the rank's seed,
π_ref log-probs, the reward, the PPO update with gradients all-reduced in ``guarded_step``.
The global batch is the same at every N. Throughput = sampled sequences of the global batch
per second of wall time (the slowest rank; the first step is a warm-up and not timed).

``--phases`` also times each phase of the step on every rank (sample: ``generate`` and the
teacher-forced scoring; π_ref; reward; the update: forward, backward, gradient all-reduce, clip
and checks, AdamW step) in wall-clock and in CPU seconds, and prints a table (slowest rank per
phase). ``--baseline REV`` measures the advx code of git revision REV as well, interleaved
with this tree's at each process count, so both see the same load (a before/after in one run).
``--independent`` also runs N independent one-process copies at once, each on 1/N of the
batch, with no process group: the ratio data parallelism could reach on this machine.

Writes ``benchmarks/results/scaling.json`` with both figures, the ratio, the machine's load
average before and after (the machine may be shared: a busy machine lowers the ratio) and the
CPU seconds per step of every rank. CPU time barely depends on the load: N x (one process's
CPU seconds per step / the sum over the N ranks') bounds the wall-clock ratio on a machine
with N idle cores, and is printed as "ratio bound on idle cores".
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


Clock = tuple[float, float]


class Phases:
    """Wall-clock and CPU seconds per phase of the current step (``--phases``), by wrapping
    the functions the improvement step calls; phases nest (a phase's time includes the phases
    inside it). CPU seconds are the process's (all threads: gloo's included) and, unlike wall
    time, barely depend on what else the machine runs."""

    def __init__(self) -> None:
        self.current: dict[str, list[float]] = {}
        self.steps: list[dict[str, list[float]]] = []

    @staticmethod
    def now() -> Clock:
        return time.perf_counter(), time.process_time()

    def add(self, name: str, since: Clock) -> Clock:
        """Add the time since ``since`` to phase ``name``; returns now."""
        now = self.now()
        total = self.current.setdefault(name, [0.0, 0.0])
        total[0] += now[0] - since[0]
        total[1] += now[1] - since[1]
        return now

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = self.now()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, start)

        return timed

    def end_step(self, keep: bool) -> None:
        if keep:
            self.steps.append(self.current)
        self.current = {}

    def mean(self) -> dict[str, dict[str, float]]:
        """``{"wall": {phase: s}, "cpu": {phase: s}}``, means over the kept steps."""
        names = dict.fromkeys(k for step in self.steps for k in step)
        return {clock: {k: sum(s[k][i] for s in self.steps if k in s) / len(self.steps)
                        for k in names}
                for i, clock in enumerate(("wall", "cpu"))}


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
    started: list[Clock] = []
    optimizer.optimizer.register_step_pre_hook(lambda *_: started.append(phases.now()))
    optimizer.optimizer.register_step_post_hook(
        lambda *_: phases.add("update: optimizer step", started.pop()))


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
        times, cpu = [], []
        for step in range(args.steps + 1):
            if is_distributed():
                torch.distributed.barrier()
            start, cpu_start = time.perf_counter(), time.process_time()
            prompts = shard(c.task.rl_prompts(spec.loop.batch_size, rng))
            with rank_seed():
                mark = phases.now()
                rollout = c.generator.sample(prompts, n=1, temperature=1.0)
                mark = phases.add("sample", mark)
                with torch.no_grad():
                    rollout.ref_logprobs = reference.policy_outputs(rollout).logprobs
                mark = phases.add("reference", mark)
                ctx = StepContext(task=c.task, generator=c.generator, classifier=c.classifier,
                                  reference=reference, round=1, step=step, rng=rng)
                rewards = c.reward(rollout, ctx)
                mark = phases.add("reward", mark)
                c.optimizer.update(rollout, rewards, ctx)
                mark = phases.add("update", mark)
            if is_distributed():
                torch.distributed.barrier()
            phases.add("barrier (waiting for the slower rank)", mark)
            if step > 0:  # the first step warms up allocators and caches
                times.append(time.perf_counter() - start)
                cpu.append(time.process_time() - cpu_start)
            phases.end_step(keep=step > 0)
    per_rank: list[Any] = [phases.mean()]
    cpu_per_rank: list[Any] = [sum(cpu) / len(cpu)]
    if is_distributed():
        per_rank, cpu_per_rank = [None] * world_size(), [None] * world_size()
        torch.distributed.all_gather_object(per_rank, phases.mean())
        torch.distributed.all_gather_object(cpu_per_rank, sum(cpu) / len(cpu))
    if rank() == 0:
        result: dict[str, Any] = {
            "processes": world_size(), "step_seconds": times,
            "sequences_per_second": spec.loop.batch_size * len(times) / sum(times),
            "cpu_seconds_per_step_per_rank": cpu_per_rank,
        }
        if args.phases:
            result["phase_seconds_per_rank"] = per_rank
        Path(args.out).write_text(json.dumps(result))


def launch(n: int, args: argparse.Namespace, code: Path) -> dict:
    """Run the worker under ``torchrun`` with N processes on the advx code in ``code``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = Path(tempfile.mkdtemp()) / "result.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join([str(code / "core"), str(code / "plugins")]))
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--nproc_per_node", str(n), "--master_port", str(port),
           __file__, "--worker", "--out", str(out), "--steps", str(args.steps),
           "--batch", str(args.batch), "--max-new-tokens", str(args.max_new_tokens),
           *(["--phases"] if args.phases else [])]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def launch_independent(n: int, args: argparse.Namespace) -> dict:
    """N independent one-process workers at once, each on 1/N of the global batch: no
    process group, no all-reduce, nothing replicated but each process's own fixed costs.
    What data parallelism could reach on this machine at this shape (``--independent``)."""
    outs = [Path(tempfile.mkdtemp()) / "result.json" for _ in range(n)]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join([str(REPO / "core"), str(REPO / "plugins")]))
    procs = [subprocess.Popen(
        [sys.executable, __file__, "--worker", "--out", str(out), "--steps", str(args.steps),
         "--batch", str(args.batch // n), "--max-new-tokens", str(args.max_new_tokens),
         *(["--phases"] if args.phases else [])], env=env, stdout=subprocess.DEVNULL)
        for out in outs]
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"an independent worker failed (exit {proc.returncode})")
    parts = [json.loads(out.read_text()) for out in outs]
    slowest = max((p["step_seconds"] for p in parts), key=sum)
    result: dict[str, Any] = {
        "processes": n, "step_seconds": slowest,
        "sequences_per_second": args.batch * len(slowest) / sum(slowest),
        "cpu_seconds_per_step_per_rank": [p["cpu_seconds_per_step_per_rank"][0] for p in parts],
    }
    if args.phases:
        result["phase_seconds_per_rank"] = [p["phase_seconds_per_rank"][0] for p in parts]
    return result


def export_revision(revision: str, into: Path) -> Path:
    """The advx code (core/, plugins/) of git ``revision`` of this repository, in ``into``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "core", "plugins"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def summarise(results: dict[int, dict], first: int, phases: bool) -> dict[str, Any]:
    base = results[first]["sequences_per_second"]
    summary: dict[str, Any] = {
        "results": {str(n): r for n, r in results.items()},
        "ratio": {str(n): r["sequences_per_second"] / base for n, r in results.items()},
    }
    # CPU seconds (all threads, gloo's included) per step summed over the ranks, relative to
    # one process: N x this bounds the wall-clock ratio on an otherwise idle machine with N
    # free cores, whatever the load was during the measurement.
    cpu = {n: sum(r["cpu_seconds_per_step_per_rank"]) for n, r in results.items()}
    summary["cpu_efficiency"] = {str(n): cpu[first] / c for n, c in cpu.items()}
    if phases:
        summary["phases"] = {clock: phase_table(results, clock) for clock in ("wall", "cpu")}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after 1 warm-up)")
    parser.add_argument("--batch", type=int, default=16, help="global prompts per step")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "scaling.json"))
    parser.add_argument("--phases", action="store_true",
                        help="also time each phase of the step (per rank) and print a table")
    parser.add_argument("--baseline", metavar="REV",
                        help="also measure the advx code of git revision REV, interleaved with "
                             "this tree's (same load), and print both")
    parser.add_argument("--independent", action="store_true",
                        help="also run N independent 1-process copies at once, each on 1/N of "
                             "the batch (no communication): this machine's ceiling")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        codes = {"this": REPO}
        if args.baseline:
            codes = {args.baseline: export_revision(args.baseline, Path(tmp)),
                     **codes}
        load_before = os.getloadavg()
        results: dict[str, dict[int, dict]] = {label: {} for label in codes}
        for n in args.processes:  # interleaved: both codes see the same load
            for label, code in codes.items():
                results[label][n] = launch(n, args, code)
            if args.independent:
                results.setdefault("independent", {})[n] = (
                    launch_independent(n, args) if n > 1 else results["this"][n])
        load_after = os.getloadavg()
    first = args.processes[0]
    summaries = {label: summarise(r, first, args.phases) for label, r in results.items()}
    for label, summary in summaries.items():
        title = {"this": "this tree", "independent": "independent processes (no process group)"}
        print(f"{title.get(label, 'baseline ' + label)}:")
        for n, result in results[label].items():
            print(f"  {n} process(es): {result['sequences_per_second']:.3f} sequences/s "
                  f"(steps {', '.join(f'{t:.2f}' for t in result['step_seconds'])} s)")
        for n in args.processes[1:]:
            efficiency = summary["cpu_efficiency"][str(n)]
            print(f"  ratio {n}/{first}: {summary['ratio'][str(n)]:.2f}x wall clock; CPU time per "
                  f"step, all ranks: {1 / efficiency:.2f}x one process's (ratio bound on idle "
                  f"cores {n * efficiency:.2f}x)")
    print(f"load average before/after: {load_before} / {load_after}")
    if args.phases:
        for clock in ("wall", "cpu"):
            print_phases(clock, {label: s["phases"][clock] for label, s in summaries.items()})
    report = {
        "what": "improvement-step throughput (sample, reference, reward, PPO update), same "
                "global batch, one torch thread per process, t5-small shape, random weights",
        "command": "benchmarks/scaling.py " + " ".join(sys.argv[1:]),
        "global_batch": args.batch, "max_new_tokens": args.max_new_tokens,
        "timed_steps": args.steps,
        **summaries["this"],
        "load_average_before": load_before, "load_average_after": load_after,
        "cpu_count": os.cpu_count(), "machine": platform.platform(),
    }
    if args.baseline:
        report["baseline"] = {"revision": args.baseline,
                              **summaries[args.baseline]}
    if args.independent:
        report["independent"] = summaries["independent"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


PHASES = ["sample", "sample: generate", "sample: teacher-forced scoring", "reference", "reward",
          "update", "update: forward", "update: backward", "update: all-reduce",
          "update: clip + checks", "update: optimizer step", "update: other",
          "barrier (waiting for the slower rank)"]


def phase_table(results: dict[int, dict], clock: str) -> dict[str, dict[str, float]]:
    """Seconds per timed step of each phase: ``{phase: {"1": s, "2": s (slowest rank)}}``.

    With N processes each phase is the largest over the ranks (the step waits for the
    slowest); "update: all-reduce" includes the wait for the other rank's backward."""
    table: dict[str, dict[str, float]] = {}
    for n, result in results.items():
        for rank_phases in result["phase_seconds_per_rank"]:
            derived = dict(rank_phases[clock])
            nested = ("update: all-reduce", "update: optimizer step")
            derived["update: clip + checks"] = derived.pop("update: guarded_step", 0.0) - sum(
                derived.get(k, 0.0) for k in nested)
            derived["update: other"] = derived.get("update", 0.0) - sum(
                derived.get(k, 0.0) for k in (*nested, "update: forward", "update: backward",
                                              "update: clip + checks"))
            derived["sample: teacher-forced scoring"] = derived.get("sample", 0.0) - derived.get(
                "sample: generate", 0.0)
            for name, seconds in sorted(derived.items(), key=lambda kv: PHASES.index(kv[0])):
                row = table.setdefault(name, {})
                row[str(n)] = max(row.get(str(n), 0.0), seconds)
    return table


def print_phases(clock: str, tables: dict[str, dict[str, dict[str, float]]]) -> None:
    """One column per (code, process count); one row per phase."""
    columns = [(label, n) for label, table in tables.items()
               for n in sorted({n for row in table.values() for n in row}, key=int)]
    names = [name for name in PHASES if any(name in table for table in tables.values())]
    width = max(len(name) for name in names) + 2
    print(f"{clock} seconds per timed step, slowest rank; a phase 'x: y' is part of x")
    for line in range(2):
        cells = [label[:11] if line == 0 else f"{n} proc" for label, n in columns]
        print(f"{'' if line else 'phase':{width}}" + "".join(f"{c:>12}" for c in cells))
    for name in names:
        print(f"{name:{width}}" + "".join(
            f"{tables[label].get(name, {}).get(n, float('nan')):12.3f}" for label, n in columns))


if __name__ == "__main__":
    main()

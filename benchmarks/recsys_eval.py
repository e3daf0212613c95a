"""Time the all-user beam-search evaluation of a recommendation recipe, with each prompt encoded
once for its beams (``CausalGenerator._shared_prompt_cache``) against ``generate`` repeating
every prompt ``k`` times before its first forward (the code before), and 64 prompts a call
against 256, side by side.

Builds the recipe's task and (untrained: beam-search cost does not depend on the weights)
generator, evaluates ``--users`` users of each split (the task's own length-ordered batches,
constrained and unconstrained as the recipe says), interleaving the variants ``--repeats``
times, and extrapolates the median to every user of both splits: the task's wall-clock
``eval/seconds`` per mode and the process's CPU seconds for both (the machine may be shared).
Prints a table, writes JSON.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/recsys_eval.py --users 1000
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes/policy_beauty.yaml"))
    parser.add_argument("--users", type=int, default=1000, help="users of each split timed")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="recipe key=value overrides")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/recsys_eval.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    from advx.build import build_components
    from advx.plugins import get_registry
    from advx.recipe import load_recipe, validate_recipe

    # The codes' quality does not change the search's cost: a short RQ-VAE fit is enough.
    overrides = [f"task.eval_users={args.users}", "task.rqvae_epochs=5", *args.overrides]
    recipe = validate_recipe(load_recipe(args.recipe, overrides), get_registry())
    started = time.perf_counter()
    components, _ = build_components(recipe, Path(tempfile.mkdtemp()), quiet=True)
    build_s = time.perf_counter() - started
    task, generator = components.task, components.generator
    all_users = len(task.split.valid) + len(task.split.test)
    timed_users = sum(len(v) for v in task.eval_sets.values())
    shared = generator._shared_prompt_cache
    # (name, prompt encoded once per beam group?, prompts per beam-search call)
    variants = [("before: repeated prompt, 256", False, 256),
                ("shared prompt, 256", True, 256),
                ("now: shared prompt, 64", True, 64)]

    def evaluate(cached: bool, batch: int) -> dict[str, float]:
        generator._shared_prompt_cache = shared if cached else (lambda *a: {})
        task.config.eval_batch_size = batch
        cpu = time.process_time()
        metrics = task.evaluate(components, "benchmark")
        timings = {k: v for k, v in metrics.items() if k.startswith("eval/")}
        return {**timings, "cpu_s": time.process_time() - cpu}

    # task.evaluate computes the popularity baselines on its first call only: done here, so
    # the first timed variant's CPU seconds do not include them.
    from advx_recsys.baselines import popularity_baselines

    task._baselines = popularity_baselines(task.eval_sets, task.popularity, task.items,
                                           task.config.topk, task._ks())
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in variants}
    for _ in range(args.repeats):  # interleaved, so background load hits all alike
        for name, cached, batch in variants:
            runs[name].append(evaluate(cached, batch))
    record: dict[str, object] = {"build_s": build_s, "timed_users": timed_users,
                                 "all_users_both_splits": all_users, "runs": runs}
    before = variants[0][0]
    print(f"{'variant':<30} {'measure':<18} {'s / 1000 users':>15} {'all users (min)':>16} "
          f"{'speed-up':>9}")
    for key in runs[before][0]:
        medians = {name: statistics.median(r[key] for r in rows) for name, rows in runs.items()}
        for name, seconds in medians.items():
            entry = {"per_1000_users_s": 1000 * seconds / timed_users,
                     "all_users_both_splits_min": seconds / timed_users * all_users / 60,
                     "speedup_vs_before": medians[before] / seconds}
            record[f"{name} | {key}"] = entry
            print(f"{name:<30} {key:<18} {entry['per_1000_users_s']:>15.1f} "
                  f"{entry['all_users_both_splits_min']:>16.1f} "
                  f"{entry['speedup_vs_before']:>8.2f}x")
    record["setup"] = {
        "recipe": str(Path(args.recipe).relative_to(ROOT)), "overrides": overrides,
        "generator_parameters": generator.num_parameters(), "threads": 1,
        "python": platform.python_version(), "torch": torch.__version__,
        "machine": platform.machine(), "repeats": args.repeats,
    }
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())

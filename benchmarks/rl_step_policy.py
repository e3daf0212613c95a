"""Time the parts of one GRPO-style RL step of the full AdaGRPO study on a trained policy.

Opens a finished ``recipes/policy_beauty.yaml`` run (its SFT checkpoint is what every seed of
``compares/adagrpo_beauty_full.yaml`` starts from) and times, per step of 32 training prompts
× G = 8 samples (the study's ``loop.batch_size`` and ``samples_per_prompt``): sampling, the
reference policy's log-probs, and the policy's log-probs with a backward pass and an AdamW
step. The ranker's reward and AdaGRPO's NLL term are not included. Prints the median of the
steps after the first and writes JSON; the figure feeds the study's cost estimate
(docs/results/adagrpo.md).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rl_step_policy.py runs/policy_beauty/<run>
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/rl_step_policy.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    from advx.use import open_run

    with open_run(args.run_dir, round=0) as opened:
        task, generator = opened.components.task, opened.components.generator
        rng = np.random.default_rng(0)
        reference = generator.reference()
        optimizer = torch.optim.AdamW(generator.parameters(), lr=3e-4)
        steps: list[dict[str, float]] = []
        for _ in range(args.steps):
            prompts = task.rl_prompts(args.prompts, rng)
            t0 = time.process_time()
            rollout = generator.sample(prompts, n=args.group, temperature=1.0)
            t1 = time.process_time()
            with torch.no_grad():
                reference.policy_outputs(rollout)
            t2 = time.process_time()
            loss = -generator.policy_outputs(rollout).logprobs.sum(-1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            t3 = time.process_time()
            steps.append({"sample_s": t1 - t0, "reference_s": t2 - t1, "update_s": t3 - t2})
    timed = steps[1:] or steps  # the first step warms up
    record = {part: statistics.median(s[part] for s in timed) for part in steps[0]}
    record["total_s"] = sum(record.values())
    print("  ".join(f"{k}={v:.2f}" for k, v in record.items()), "(CPU seconds, median)")
    record.update(steps=steps, rows=args.prompts * args.group, run_dir=args.run_dir,
                  threads=1, torch=torch.__version__)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

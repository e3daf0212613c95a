"""Throughput of the batched Monte-Carlo rollout reward vs a loop over rollouts and positions.

Same generator (SeqGAN's LSTM: V 5000, E 32, H 32), same discriminator (the paper's CNN, 1,720
filters, unless --small-cnn), same batch (64), N (16) and T (20), in one process:

* batched: ``mc_rollout`` as shipped: ONE ``generator.complete`` call with
  M = B·N·(T−1) = 19,456 rows and one discriminator call over them;
* loop: the way common reference implementations compute it (SeqGAN's ``rollout.get_reward``,
  its PyTorch ports): ``for n in range(N): for t in range(1, T):`` complete the batch's
  prefixes of length t (64 rows) and score them with the discriminator.

Both loops use the same ``complete`` (which re-uses teacher-forced states, as the reference
code's prefix recurrence does) and the same sampler, so the ratio is the effect of batching
alone. Prints sequences/s (batch rows whose per-token reward is computed) and the ratio, and
writes benchmarks/results/mc_rollout.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mc_rollout.py            # 1 thread
    .venv/bin/python benchmarks/mc_rollout.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from advx.components import StepContext
from advx.rollout import Prompt
from advx_seqgan.cnn import CNNConfig, CNNDiscriminator
from advx_seqgan.lstm import LSTMConfig, LSTMGenerator
from advx_seqgan.mc_rollout import MCRolloutConfig, MCRolloutReward

ROOT = Path(__file__).resolve().parents[1]


def loop_reward(policy, classifier, rollout, n: int) -> tuple[torch.Tensor, dict[str, float]]:
    """Reference-style MC rollout: a Python loop over rollouts and positions."""
    batch, width = rollout.response_ids.shape
    q = torch.zeros(batch, width)
    rows = torch.arange(batch)
    gen_s = disc_s = 0.0
    for _ in range(n):
        for t in range(1, width):
            t0 = time.perf_counter()
            done = policy.complete(rollout, rows, torch.full((batch,), t))
            t1 = time.perf_counter()
            q[:, t - 1] += classifier.predict_proba(done.samples())[:, 1] / n
            disc_s += time.perf_counter() - t1
            gen_s += t1 - t0
    t1 = time.perf_counter()
    q[:, -1] = classifier.predict_proba(rollout.samples())[:, 1]
    disc_s += time.perf_counter() - t1
    return q, {"complete_s": gen_s, "discriminator_s": disc_s}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rollouts", type=int, default=16)
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--vocab", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--small-cnn", action="store_true", help="paper filter counts / 4")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/mc_rollout.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    gen = LSTMGenerator(LSTMConfig(vocab="ids", vocab_size=args.vocab, max_len=args.length), [])
    cnn = CNNConfig(vocab="ids", vocab_size=args.vocab, max_len=args.length)
    if args.small_cnn:
        cnn.num_filters = [n // 4 for n in cnn.num_filters]
    disc = CNNDiscriminator(cnn, [], seed=0, device="cpu")
    reward = MCRolloutReward(MCRolloutConfig(rollouts=args.rollouts))
    ctx = StepContext(task=None, generator=gen, classifier=disc, reference=None, round=1,
                      step=1, rng=np.random.default_rng(0))
    rollout = gen.sample([Prompt("")] * args.batch)
    policy = reward.sync_policy(gen)

    # batched (timed in two parts through the reward's own code path)
    t0 = time.perf_counter()
    rewards = reward(rollout, ctx)
    batched_s = time.perf_counter() - t0
    rows = args.batch * args.rollouts * (args.length - 1)
    tc = time.perf_counter()
    done = policy.complete(
        rollout,
        torch.arange(args.batch).repeat(args.rollouts * (args.length - 1)),
        torch.arange(1, args.length).repeat_interleave(args.batch).repeat(args.rollouts),
    )
    complete_s = time.perf_counter() - tc
    del done

    t0 = time.perf_counter()
    q_loop, loop_parts = loop_reward(policy, disc, rollout, args.rollouts)
    loop_s = time.perf_counter() - t0

    result = {
        "setting": {"batch": args.batch, "rollouts": args.rollouts, "length": args.length,
                    "vocab": args.vocab, "emb_dim": 32, "hidden_dim": 32,
                    "cnn_filters": sum(cnn.num_filters), "threads": args.threads,
                    "continuations": rows},
        "batched": {"seconds": batched_s, "sequences_per_s": args.batch / batched_s,
                    "complete_only_s": complete_s},
        "loop": {"seconds": loop_s, "sequences_per_s": args.batch / loop_s, **loop_parts},
        "speedup": loop_s / batched_s,
        "speedup_complete_only": loop_parts["complete_s"] / complete_s,
        "mean_q_batched": float(rewards.terms["mc_q_mean"].mean()),
        "mean_q_loop": float(q_loop.mean()),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "torch": torch.__version__, "load_avg": os.getloadavg()},
    }
    print(f"batched: {result['batched']['sequences_per_s']:.2f} seq/s ({batched_s:.1f}s a batch)")
    print(f"loop:    {result['loop']['sequences_per_s']:.2f} seq/s ({loop_s:.1f}s a batch)")
    print(f"speedup: {result['speedup']:.2f}x (generator continuations alone: "
          f"{result['speedup_complete_only']:.2f}x)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

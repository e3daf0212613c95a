"""Throughput of the batched Monte-Carlo rollout reward vs a loop over rollouts and positions.

Same generator (SeqGAN's LSTM: V 5000, E 32, H 32), same discriminator (the paper's CNN, 1,720
filters, unless --small-cnn), same batch (64), N (16) and T (20), in one process:

* batched: ``mc_rollout`` as shipped: ONE ``generator.complete`` call with
  M = B·N·(T−1) = 19,456 rows and one discriminator call over them;
* loop: the way common reference implementations compute it (SeqGAN's ``rollout.get_reward``,
  its PyTorch ports): ``for n in range(N): for t in range(1, T):`` complete the batch's
  prefixes of length t (64 rows) and score them with the discriminator.

The loop uses the same ``complete`` (which re-uses teacher-forced states) and the same
sampler, so that ratio is the effect of batching alone. A third timing, ``reference_style``,
is the loop as the common PyTorch ports write it: for every (n, t) the prefix is re-run through
the LSTM from the zero state and the rest is sampled with ``torch.multinomial``; its ratio
mixes batching with the state re-use and the faster sampler of ``lstm.complete``.

Prints sequences/s (batch rows whose per-token reward is computed) and the ratios, and
writes benchmarks/results/mc_rollout.json. ``--repeats K`` measures the three side by side K
times in the same process and reports the medians (and every run's ratio): on a shared VM
single runs vary by 20-40%.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mc_rollout.py            # 1 thread
    .venv/bin/python benchmarks/mc_rollout.py --threads 2 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from advx.components import StepContext
from advx.rollout import Prompt, Sample
from advx_seqgan.cnn import CNNConfig, CNNDiscriminator
from advx_seqgan.lstm import LSTMConfig, LSTMGenerator
from advx_seqgan.mc_rollout import MCRolloutConfig, MCRolloutReward

ROOT = Path(__file__).resolve().parents[1]


def clock() -> float:
    """perf_counter after the device's queued work is done (CUDA runs asynchronously)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def loop_reward(policy, classifier, rollout, n: int) -> tuple[torch.Tensor, dict[str, float]]:
    """Reference-style MC rollout: a Python loop over rollouts and positions."""
    batch, width = rollout.response_ids.shape
    q = torch.zeros(batch, width, device=rollout.response_ids.device)
    rows = torch.arange(batch)
    gen_s = disc_s = 0.0
    for _ in range(n):
        for t in range(1, width):
            t0 = clock()
            done = policy.complete(rollout, rows, torch.full((batch,), t))
            t1 = clock()
            q[:, t - 1] += classifier.predict_proba(done.samples())[:, 1] / n
            disc_s += clock() - t1
            gen_s += t1 - t0
    t1 = clock()
    q[:, -1] = classifier.predict_proba(rollout.samples())[:, 1]
    disc_s += clock() - t1
    return q, {"complete_s": gen_s, "discriminator_s": disc_s}


@torch.no_grad()
def reference_style_loop(gen, classifier, rollout, n: int) -> float:
    """Seconds for the common port's loop: recompute each prefix, sample with multinomial."""
    model = gen.model
    batch, width = rollout.response_ids.shape
    ids = rollout.response_ids
    device = ids.device
    started = clock()
    for _ in range(n):
        for t in range(1, width):
            h = torch.zeros(batch, model.lstm.hidden_size, device=device)
            c = torch.zeros_like(h)
            token = torch.zeros(batch, dtype=torch.long, device=device)  # start token 0
            out = [ids[:, i] for i in range(t)]
            for i in range(t):  # the prefix, teacher-forced
                h, c = model.step(token, h, c)
                token = ids[:, i]
            for _ in range(t, width):  # the continuation, sampled
                h, c = model.step(token, h, c)
                token = torch.multinomial(torch.softmax(model.out(h), -1), 1).squeeze(1)
                out.append(token)
            done = torch.stack(out, 1)
            texts = [" ".join(map(str, row)) for row in done.tolist()]
            classifier.predict_proba([Sample(x) for x in texts])
        # the ports score the full sequence inside the rollout loop too (N times)
        classifier.predict_proba(rollout.samples())
    return clock() - started


def time_once(args, reward, ctx, rollout, policy, gen, disc):
    """One side-by-side measurement: seconds of the batched path (and its two parts), the loop
    and the reference-style loop; plus the batched rewards and the loop's Q for the report."""
    t0 = clock()
    rewards = reward(rollout, ctx)
    batched_s = clock() - t0
    tc = clock()
    done = policy.complete(
        rollout,
        torch.arange(args.batch).repeat(args.rollouts * (args.length - 1)),
        torch.arange(1, args.length).repeat_interleave(args.batch).repeat(args.rollouts),
    )
    complete_s = clock() - tc
    td = clock()
    disc.predict_proba(done.samples())
    disc_s = clock() - td
    del done
    t0 = clock()
    q_loop, loop_parts = loop_reward(policy, disc, rollout, args.rollouts)
    loop_s = clock() - t0
    reference_s = reference_style_loop(gen, disc, rollout, args.rollouts)
    seconds = {"batched": batched_s, "complete": complete_s, "disc": disc_s, "loop": loop_s,
               "loop_complete": loop_parts["complete_s"],
               "loop_disc": loop_parts["discriminator_s"], "reference": reference_s}
    return seconds, rewards, q_loop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rollouts", type=int, default=16)
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--vocab", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1,
                        help="side-by-side measurements; the JSON reports medians and each run")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both sides run there)")
    parser.add_argument("--small-cnn", action="store_true", help="paper filter counts / 4")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/mc_rollout.json")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    gen = LSTMGenerator(LSTMConfig(vocab="ids", vocab_size=args.vocab, max_len=args.length), [],
                        device=args.device)
    cnn = CNNConfig(vocab="ids", vocab_size=args.vocab, max_len=args.length)
    if args.small_cnn:
        cnn.num_filters = [n // 4 for n in cnn.num_filters]
    disc = CNNDiscriminator(cnn, [], seed=0, device=args.device)
    reward = MCRolloutReward(MCRolloutConfig(rollouts=args.rollouts))
    ctx = StepContext(task=None, generator=gen, classifier=disc, reference=None, round=1,
                      step=1, rng=np.random.default_rng(0))
    rollout = gen.sample([Prompt("")] * args.batch)
    policy = reward.sync_policy(gen)

    # warm-up at full size, not timed: CUDA context and cuDNN autotuning; on the CPU the first
    # call of this size also pays the allocator's page faults
    reward.q_values(rollout, ctx, policy)

    runs = []
    for _ in range(args.repeats):
        seconds, rewards, q_loop = time_once(args, reward, ctx, rollout, policy, gen, disc)
        runs.append(seconds)
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    batched_s, complete_s, disc_batched_s = (median[k] for k in ("batched", "complete", "disc"))
    loop_s, reference_s = median["loop"], median["reference"]
    loop_parts = {"complete_s": median["loop_complete"], "discriminator_s": median["loop_disc"]}
    rows = args.batch * args.rollouts * (args.length - 1)

    result = {
        "setting": {"batch": args.batch, "rollouts": args.rollouts, "length": args.length,
                    "vocab": args.vocab, "emb_dim": 32, "hidden_dim": 32,
                    "cnn_filters": sum(cnn.num_filters), "threads": args.threads,
                    "device": args.device, "repeats": args.repeats,
                    "continuations": rows},
        "batched": {"seconds": batched_s, "sequences_per_s": args.batch / batched_s,
                    "complete_only_s": complete_s, "discriminator_only_s": disc_batched_s},
        "loop": {"seconds": loop_s, "sequences_per_s": args.batch / loop_s, **loop_parts},
        "reference_style": {"seconds": reference_s, "sequences_per_s": args.batch / reference_s},
        "speedup": loop_s / batched_s,
        "speedup_vs_reference_style_each_run": [r["reference"] / r["batched"] for r in runs],
        "speedup_vs_reference_style": reference_s / batched_s,
        "speedup_complete_only": loop_parts["complete_s"] / complete_s,
        # Amdahl: the discriminator scores the same B·N·(T−1) sequences on both sides, so even
        # a free generator could not beat reference_s / disc_batched_s
        "bound_vs_reference_style_if_generation_were_free": reference_s / disc_batched_s,
        "mean_q_batched": float(rewards.terms["mc_q_mean"].mean()),
        "mean_q_loop": float(q_loop.mean()),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "torch": torch.__version__, "load_avg": os.getloadavg(),
                    "gpu": torch.cuda.get_device_name() if args.device != "cpu" else None},
    }
    print(f"batched: {result['batched']['sequences_per_s']:.2f} seq/s ({batched_s:.1f}s a batch)")
    print(f"loop:    {result['loop']['sequences_per_s']:.2f} seq/s ({loop_s:.1f}s a batch)")
    print(f"reference-style loop: {result['reference_style']['sequences_per_s']:.2f} seq/s "
          f"({reference_s:.1f}s a batch)")
    print(f"speedup vs loop: {result['speedup']:.2f}x (generator continuations alone: "
          f"{result['speedup_complete_only']:.2f}x); vs reference-style loop: "
          f"{result['speedup_vs_reference_style']:.2f}x (each run: "
          + ", ".join(f"{r:.2f}x" for r in result["speedup_vs_reference_style_each_run"]) + ")")
    print(f"discriminator alone, batched: {disc_batched_s:.1f}s; a free generator would cap the "
          f"ratio vs the reference-style loop at "
          f"{result['bound_vs_reference_style_if_generation_were_free']:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Time one GRPO update step, advx ``grpo`` vs TRL 1.16 ``GRPOTrainer``, on the same batch.

Both sides take the same tiny causal model (the advx ``causal`` generator's Llama), the same
rollout (prompts, completions, old and reference log-probs, advantages) and do: loss →
backward → AdamW step. TRL's loss is ``GRPOTrainer.compute_loss`` (what its ``training_step``
differentiates); generation and reward scoring are excluded on both sides. Prints the
median step times and their ratio, and writes a JSON record.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/grpo_step.py --repeats 7
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
sys.path.insert(0, str(ROOT / "tests" / "adagrpo"))

from adagrpo_kit import WORDS, tiny_causal, trl_trainer  # noqa: E402
from advx import Prompt  # noqa: E402
from advx_grpo.grpo import GRPOConfig, GRPOOptimizer  # noqa: E402


def batch(args: argparse.Namespace):
    torch.manual_seed(0)
    gen = tiny_causal(0, d_model=args.d_model, num_layers=args.layers, num_heads=4,
                      max_new_tokens=args.new_tokens)
    prompts = [Prompt(" ".join(WORDS[i % 20 : i % 20 + 4])) for i in range(args.prompts)]
    rollout = gen.sample(prompts, n=args.group)
    mask = rollout.response_mask.float()
    g = torch.Generator().manual_seed(0)
    rollout.ref_logprobs = (rollout.logprobs + 0.1 * torch.randn(mask.shape, generator=g)) * mask
    advantages = torch.randn(rollout.batch_size, generator=g)
    return gen, rollout, advantages


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/grpo_step.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    gen, rollout, advantages = batch(args)
    beta, eps, loss_type = 0.04, 0.2, "grpo"
    ours = GRPOOptimizer(GRPOConfig(beta=beta, epsilon=eps, loss_type=loss_type, lr=1e-6,
                                    bias_correction_kl=True), gen)
    tmp = Path(tempfile.mkdtemp())
    trainer = trl_trainer(gen, tmp, beta=beta, epsilon=eps, loss_type=loss_type,
                          num_generations=args.group,
                          max_completion_length=rollout.response_ids.shape[1],
                          use_bias_correction_kl=True)
    trl_opt = torch.optim.AdamW(gen.model.parameters(), lr=1e-6)
    inputs = {
        "prompt_ids": rollout.prompt_ids, "prompt_mask": rollout.prompt_mask,
        "completion_ids": rollout.response_ids, "completion_mask": rollout.response_mask,
        "advantages": advantages, "old_per_token_logps": rollout.logprobs,
        "ref_per_token_logps": rollout.ref_logprobs,
        "num_items_in_batch": rollout.response_mask.sum(),
    }

    def advx_step() -> None:
        loss, _ = ours.loss(gen, rollout, advantages)
        ours.step(gen, loss)

    def trl_step() -> None:
        trl_opt.zero_grad()
        loss = trainer.compute_loss(gen.model, inputs)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gen.model.parameters(), 1.0)
        trl_opt.step()

    # interleave the two so background load on a shared machine hits both alike
    advx_times, trl_times = [], []
    for _ in range(args.repeats):
        advx_times += timed(advx_step, 1)
        trl_times += timed(trl_step, 1)
    a, t = statistics.median(advx_times), statistics.median(trl_times)
    record = {
        "advx_grpo_step_s": a,
        "trl_grpo_step_s": t,
        "ratio_advx_over_trl": a / t,
        "advx_times_s": advx_times,
        "trl_times_s": trl_times,
        "setup": {
            "model": f"tiny Llama d_model={args.d_model} layers={args.layers}",
            "parameters": gen.num_parameters(),
            "rows": rollout.batch_size, "prompt_tokens": rollout.prompt_ids.shape[1],
            "completion_tokens": rollout.response_ids.shape[1], "loss_type": loss_type,
            "beta": beta, "epsilon": eps, "repeats": args.repeats,
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "trl": __import__("trl").__version__, "machine": platform.machine(),
            "note": "shared 2-core CPU machine; medians of interleaved repeats",
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(f"advx grpo step {a * 1000:.1f} ms | TRL GRPOTrainer step {t * 1000:.1f} ms | "
          f"ratio advx/TRL {a / t:.2f} ({rollout.batch_size} rows, "
          f"{gen.num_parameters()} params) → {out}")


if __name__ == "__main__":
    main()

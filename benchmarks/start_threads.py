"""One training step of the AdaGRPO study's shared start on 1 and on 2 torch threads.

Why: ``advx compare --start-threads N`` gives a shared start (SFT of the policy, then the
ranker) the cores of workers that have nothing to do until it is done; whether that pays
depends on how these small models scale with intra-op threads. Measured side by side in one
process, interleaved, on the models of ``recipes/adagrpo_beauty_full.yaml``:

* policy SFT step: a Llama of the recipe's size (d 128, 4 layers, 4 heads, FFN 512; a
  vocabulary of 1,100 standing in for the trained semantic-id vocabulary), 128 examples × 25
  tokens (the length-bucketed mean), loss → backward → AdamW;
* ranker step: the project's ``SASRecEncoder`` (d 64, 2 layers, 2 heads, history 50) over the
  12,101 Beauty items, 256 user sequences, full-softmax cross-entropy at every position
  (``training: sequence``, ``loss: ce``) → backward → AdamW.

Random data: the cost of a step does not depend on the values. Run on an otherwise idle
machine (the ratio is what it is for)::

    .venv/bin/python benchmarks/start_threads.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


def policy_step() -> Callable[[], None]:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=1100, hidden_size=128, intermediate_size=512, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
        tie_word_embeddings=True))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = torch.randint(0, 1100, (128, 25))

    def step() -> None:
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return step


def ranker_step() -> Callable[[], None]:
    from advx_recsys.ranker import RankerConfig, SASRecEncoder

    torch.manual_seed(0)
    cfg = RankerConfig(d_model=64, num_layers=2, num_heads=2, dropout=0.3, max_history=50)
    encoder = SASRecEncoder(12101, cfg)
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=2e-3)
    history = torch.randint(1, 12102, (256, 50))
    target = torch.randint(1, 12102, (256, 50))

    def step() -> None:
        hidden = encoder.hidden(history)                      # [N, L, d]
        logits = hidden @ encoder.items.weight[1:].T          # every item, every position
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1) - 1).backward()
        optimizer.step()
        optimizer.zero_grad()
    return step


def timed(step: Callable[[], None], threads: int, calls: int) -> float:
    torch.set_num_threads(threads)
    step()  # warm-up at this thread count
    start = time.perf_counter()
    for _ in range(calls):
        step()
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/start_threads.json"))
    args = parser.parse_args()
    rows = []
    for name, make, calls in (("policy SFT step", policy_step, 10),
                              ("ranker step", ranker_step, 3)):
        step = make()
        times: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.repeats):  # interleaved: drift of the machine hits both alike
            for threads in (1, 2):
                times[threads].append(timed(step, threads, calls))
        one, two = statistics.median(times[1]), statistics.median(times[2])
        rows.append({"step": name, "s_1_thread": one, "s_2_threads": two,
                     "speedup": one / two, "repeats": args.repeats, "calls": calls})
    print("| step | 1 thread (s) | 2 threads (s) | speed-up |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['step']} | {row['s_1_thread']:.3f} | {row['s_2_threads']:.3f} | "
              f"{row['speedup']:.2f}× |")
    Path(args.out).write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=2)
                              + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

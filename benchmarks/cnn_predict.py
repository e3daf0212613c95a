"""``cnn_discriminator.predict_proba``: look-up tables vs the convolutional forward.

The paper's CNN (1,720 filters, V 5,000, T 20) scores the 19,456 sequences of one MC-rollout
batch (B 64 × N 16 × (T − 1)) both ways in one process, after an untimed warm-up of each; the
tables are built outside the timing (the reward reuses them while the weights are unchanged)
and their build is timed on its own. Also times the convolutions alone both ways and a
1,024 × 1,720 × 1,720 matmul, the machine's GEMM rate (what bounds the highway layer).
Prints a table, writes benchmarks/results/cnn_predict.json.

    .venv/bin/python benchmarks/cnn_predict.py --threads 2 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from advx_seqgan.cnn import CNNConfig, CNNDiscriminator, TokenTables

ROOT = Path(__file__).resolve().parents[1]


def seconds(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=64 * 16 * 19)
    parser.add_argument("--vocab", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/cnn_predict.json")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    disc = CNNDiscriminator(CNNConfig(vocab="ids", vocab_size=args.vocab, max_len=20), [],
                            seed=0, device="cpu")
    model = disc.model.eval()
    ids = torch.randint(0, args.vocab, (args.rows, 20))
    chunks = ids.split(disc.config.predict_batch)
    tables = TokenTables(model)

    def convolve_all() -> None:
        for chunk in chunks:
            x = model.embed(chunk).transpose(1, 2)
            [F.relu(conv(x)).amax(-1) for conv in model.convs]

    a, b = torch.randn(1024, 1720), torch.randn(1720, 1720)
    result = {
        "predict_convolution_s": seconds(lambda: [torch.softmax(model(c), -1) for c in chunks],
                                         args.repeats),
        "predict_tables_s": seconds(lambda: disc._proba_ids(ids), args.repeats),
        "convolutions_only_s": seconds(convolve_all, args.repeats),
        "lookups_only_s": seconds(lambda: [tables.pooled(model, c) for c in chunks],
                                  args.repeats),
        "table_build_s": seconds(lambda: TokenTables(model), args.repeats),
        "table_mib": TokenTables.nbytes(model) / 2**20,
        "gemm_gflops": 2 * 1024 * 1720 * 1720 / seconds(lambda: a @ b, args.repeats) / 1e9,
    }
    result["predict_ratio"] = result["predict_convolution_s"] / result["predict_tables_s"]
    result["convolutions_ratio"] = result["convolutions_only_s"] / result["lookups_only_s"]
    result["setting"] = {"rows": args.rows, "vocab": args.vocab, "threads": args.threads,
                         "repeats": args.repeats, "filters": sum(disc.config.num_filters),
                         "predict_batch": disc.config.predict_batch}
    result["machine"] = {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                         "torch": torch.__version__, "load_avg": os.getloadavg()}
    print(f"| {args.rows} rows, {args.threads} threads | convolution | look-up tables | ratio |")
    print("|---|---|---|---|")
    print(f"| predict_proba, s | {result['predict_convolution_s']:.2f} | "
          f"{result['predict_tables_s']:.2f} | {result['predict_ratio']:.2f}x |")
    print(f"| convolutions alone, s | {result['convolutions_only_s']:.2f} | "
          f"{result['lookups_only_s']:.2f} | {result['convolutions_ratio']:.2f}x |")
    print(f"table build {result['table_build_s']:.2f} s ({result['table_mib']:.0f} MiB); "
          f"GEMM {result['gemm_gflops']:.0f} GFLOP/s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""One rank of the all-reduce edge-case check (launched by test_all_reduce.py through
torchrun): gradients missing on one rank or on every rank, a bf16 gradient, a
non-contiguous gradient and a NaN on one rank, through ``all_reduce_gradients``; writes
``OUT/rank-<r>.json``."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch
from advx.distributed import all_reduce_gradients, init, rank


def main(out: Path) -> None:
    init()
    r = rank()
    dense = torch.nn.Parameter(torch.zeros(3))
    dense.grad = torch.full((3,), 1.0 + r)  # 1 and 2: mean 1.5
    low = torch.nn.Parameter(torch.zeros(2, dtype=torch.bfloat16))
    low.grad = torch.full((2,), 2.0 + 2 * r, dtype=torch.bfloat16)  # 2 and 4: mean 3
    one_rank = torch.nn.Parameter(torch.zeros(2))  # only rank 1 has a gradient: mean 2
    if r == 1:
        one_rank.grad = torch.full((2,), 4.0)
    nobody = torch.nn.Parameter(torch.zeros(2))  # no rank has one: stays None
    frozen = torch.nn.Parameter(torch.zeros(2), requires_grad=False)
    strided = torch.nn.Parameter(torch.zeros(3, 2))
    strided.grad = (torch.arange(6.0).view(2, 3) * (r + 1)).t()  # non-contiguous: mean 1.5x
    loss = all_reduce_gradients([dense, low, one_rank, nobody, frozen, strided],
                                torch.tensor(1.0 + r))
    nan = torch.nn.Parameter(torch.zeros(2))
    nan.grad = torch.tensor([math.nan if r == 1 else 1.0, 1.0])
    all_reduce_gradients([nan], None)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank-{r}.json").write_text(json.dumps({
        "dense": dense.grad.tolist(), "low": low.grad.float().tolist(),
        "low_dtype": str(low.grad.dtype), "one_rank": one_rank.grad.tolist(),
        "nobody": nobody.grad is None, "frozen": frozen.grad is None,
        "strided": strided.grad.tolist(), "loss": float(loss),
        "nan_first": str(float(nan.grad[0])), "nan_second": float(nan.grad[1]),
    }))


if __name__ == "__main__":
    main(Path(sys.argv[1]))

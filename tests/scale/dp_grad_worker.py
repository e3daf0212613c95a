"""One rank of the data-parallel gradient check (launched by test_distributed.py through
torchrun, one or two "nodes"): the PPO clipped-surrogate loss of a tiny policy on a fixed
rollout, the gradient all-reduced over the ranks' shards vs the gradient of the whole rollout
in one process, then one guarded optimizer step; writes ``OUT/rank-<r>.json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from advx.distributed import (
    all_reduce_gradients,
    any_rank,
    init,
    mean_metrics,
    rank,
    shard,
    world_size,
)
from advx.numerics import guarded_step
from advx_ppo.ppo import policy_loss

B, T, V, D = 8, 5, 7, 4


def main(out: Path) -> None:
    init()
    torch.manual_seed(0)  # the same weights and rollout on every rank
    model = torch.nn.Sequential(torch.nn.Linear(D, 16), torch.nn.Tanh(), torch.nn.Linear(16, V))
    features = torch.randn(B, T, D)
    tokens = torch.randint(0, V, (B, T))
    old_logprobs = torch.randn(B, T) * 0.1 - 2.0
    advantages = torch.randn(B, T)
    mask = torch.ones(B, T)  # equal tokens per row: shard means average to the global mean

    def loss_on(rows: list[int]) -> torch.Tensor:
        logits = model(features[rows]).log_softmax(-1)
        logprobs = logits.gather(-1, tokens[rows].unsqueeze(-1)).squeeze(-1)
        loss, _ = policy_loss(logprobs, old_logprobs[rows], advantages[rows], mask[rows], 0.2)
        return loss

    params = list(model.parameters())
    model.zero_grad()
    loss_on(list(range(B))).backward()
    whole = [p.grad.clone() for p in params]

    model.zero_grad()
    loss_on(shard(list(range(B)))).backward()
    all_reduce_gradients(params, None)
    diff = max(float((p.grad - g).abs().max()) for p, g in zip(params, whole, strict=True))

    optimizer = torch.optim.AdamW(params, lr=0.1)
    model.zero_grad()
    loss = loss_on(shard(list(range(B))))
    loss.backward()
    guarded_step(optimizer, params, loss=loss, max_norm=1.0, what="check")
    flat = torch.cat([p.detach().reshape(-1) for p in params]).tolist()
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank-{rank()}.json").write_text(json.dumps(
        {"world_size": world_size(), "grad_diff": diff, "params": flat,
         "metrics": mean_metrics({"x": float(rank()), "only": 1.0} if rank() else {"x": 0.0}),
         "any_rank": any_rank(rank() == 1)}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))

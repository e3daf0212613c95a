"""Gradient accumulation: micro-batches inside one optimizer step, one key everywhere.

``grad_accum_steps: k`` (the ``ppo``, ``grpo``, ``adagrpo`` and ``reinforce`` optimizers and
the generators' SFT) splits the rows of every optimizer step's batch into ``k`` contiguous
micro-batches, runs forward and backward on each in turn (so activations are held for one
micro-batch at a time) and steps once. Each micro-batch's loss is weighted by its share of
what the whole batch's loss averages over (tokens for token-mean losses, rows for per-row
means), so the accumulated gradient equals the whole batch's: the same update with less
memory, not a different one (tested to float tolerance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from advx.errors import ConfigError

__all__ = ["AccumulationConfig", "check_accumulation", "micro_batches"]


@dataclass(kw_only=True)
class AccumulationConfig:
    """The gradient-accumulation key.

    Attributes:
        grad_accum_steps: micro-batches per optimizer step (1 = none); the batch a step
            trains on (a PPO/GRPO minibatch, the REINFORCE rollout, an SFT minibatch) is
            split into this many, its gradient accumulated, one optimizer step taken.
    """

    grad_accum_steps: int = 1


def check_accumulation(config: Any, where: str) -> None:
    """ConfigError naming ``where.grad_accum_steps`` unless it is ≥ 1."""
    steps = getattr(config, "grad_accum_steps", 1)
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"{where}.grad_accum_steps must be an integer ≥ 1, got {steps!r}")


def micro_batches(n: int, steps: int, device: Any = None) -> list[torch.Tensor]:
    """Row indices of ``n`` rows in ``min(steps, n)`` contiguous, non-empty micro-batches."""
    rows = torch.arange(n, device=device)
    return [chunk for chunk in rows.tensor_split(max(min(steps, n), 1)) if len(chunk)]

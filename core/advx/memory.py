"""Gradient checkpointing for the Hugging Face generators and the encoder classifier.

``gradient_checkpointing: true`` (``seq2seq``, ``causal``, ``encoder``) keeps only each
transformer layer's inputs during a forward pass with gradients and recomputes the layer in
the backward pass: activation memory per layer instead of per operation, for about one extra
forward pass of compute. The numbers are unchanged (tested).

Hugging Face's own switch (``gradient_checkpointing_enable``) checkpoints a layer only when
the layer is in training mode, but advx keeps its policies in eval mode (no dropout, so
sampled, recomputed and reference log-probs agree), which would make the switch a no-op in
every PPO/GRPO/REINFORCE update. So this module turns the same machinery on for every layer
(``transformers.modeling_layers.GradientCheckpointingLayer``: its ``gradient_checkpointing``
flag and checkpoint function, non-reentrant) and marks a layer as training exactly while
gradients are enabled — a forward pre-hook on the layer itself, not its children, so dropout
modules keep their own mode. Passes without gradients (sampling with the KV cache, π_ref,
evaluation) run as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from advx.errors import ConfigError

__all__ = ["CheckpointingKeys", "enable_gradient_checkpointing"]


@dataclass(kw_only=True)
class CheckpointingKeys:
    """The ``gradient_checkpointing`` key.

    Attributes:
        gradient_checkpointing: recompute each transformer layer in the backward pass
            instead of storing its activations (:mod:`advx.memory`).
    """

    gradient_checkpointing: bool = False


def _train_while_grad(module: nn.Module, args: Any) -> None:
    module.training = torch.is_grad_enabled()


def enable_gradient_checkpointing(model: nn.Module, where: str) -> int:
    """Checkpoint every Hugging Face transformer layer of ``model`` (see the module
    docstring); returns how many. ConfigError when the model has none."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    if not layers:
        raise ConfigError(
            f"{where}.gradient_checkpointing: the model has no Hugging Face transformer layers "
            "to checkpoint; set it to false"
        )
    for layer in layers:
        layer.gradient_checkpointing = True
        layer._gradient_checkpointing_func = partial(checkpoint, use_reentrant=False)
        layer.register_forward_pre_hook(_train_while_grad)
    return len(layers)

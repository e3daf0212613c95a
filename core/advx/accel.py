"""Mixed precision through ``accelerate``: the recipe's top-level ``precision`` key.

``precision: fp32`` (default) in a plain run builds no Accelerator and changes nothing: a
plain run is what it always was. ``bf16`` / ``fp16`` (or a data-parallel launch) make one
``accelerate.Accelerator(mixed_precision=...)`` per process (in
:func:`advx.build.build_components`, available to factories as ``ctx.accelerator``); for mixed
precision every torch module a component holds (``model``, ``net``, ``value_head`` attributes
of the generator and the classifier) gets accelerate's autocast, as
``accelerator.prepare_model`` applies it (:func:`prepare_component`): the module's ``forward``
runs under ``torch.autocast`` and its outputs are converted back to fp32. So, everywhere
downstream of a forward pass — log-softmax and the sequence log-probs, KL to π_ref, rewards,
returns, advantages, PPO/GRPO/REINFORCE losses, classifier cross-entropy — the arithmetic is
fp32; only the matrix multiplications inside the models run in half precision. Weights and
optimizer state stay fp32 (autocast, not half weights).

``fp16`` additionally scales the loss (``accelerator.scaler``, a ``torch.amp.GradScaler``):
every backward in advx goes through :func:`backward`, and :func:`advx.numerics.guarded_step`
unscales before clipping and lets the scaler skip the step (and lower the scale) on an
overflow, the usual fp16 recipe, instead of raising. fp16 needs CUDA (accelerate has no fp16
autocast on CPU); bf16 runs on CPU and GPU.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from types import MethodType
from typing import Any

import torch
from torch import nn

from advx.errors import ConfigError

__all__ = [
    "PRECISIONS",
    "Precision",
    "backward",
    "current_scaler",
    "make_accelerator",
    "parse_precision",
    "prepare_component",
]


class Precision(enum.Enum):
    """The recipe's ``precision`` key."""

    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


PRECISIONS = tuple(p.value for p in Precision)

_MIXED = {Precision.fp32: "no", Precision.bf16: "bf16", Precision.fp16: "fp16"}

_SCALER: torch.amp.GradScaler | None = None
"""The fp16 loss scaler of this process's run (None: no scaling). Process-wide because every
optimizer's backward and step must use the same one, and a process runs one recipe at a time."""


def parse_precision(value: Any) -> Precision:
    """The recipe's ``precision`` value as a :class:`Precision`; ConfigError otherwise."""
    try:
        return Precision(str(value))
    except ValueError:
        raise ConfigError(
            f"precision: expected one of {', '.join(PRECISIONS)}, got {value!r}"
        ) from None


def make_accelerator(precision: Precision, device: str) -> Any | None:
    """The run's Accelerator: None for a plain fp32 run (nothing to do: the plain path stays
    as is); one per process for mixed precision or a data-parallel run."""
    from advx.distributed import is_distributed

    global _SCALER
    _SCALER = None
    if precision is Precision.fp32 and not is_distributed():
        return None
    on_cpu = not str(device).startswith("cuda")
    if precision is Precision.fp16 and on_cpu:
        raise ConfigError(
            f"precision: fp16 needs a CUDA device (device is {device!r}); accelerate has no "
            "fp16 autocast on CPU. Use precision=bf16 there, or device=cuda."
        )
    from accelerate import Accelerator  # heavy import: only when mixed precision is asked for
    from accelerate.state import AcceleratorState

    # One process may run several recipes (a sweep): drop the previous run's precision
    # settings, keep the process state (and any process group) accelerate shares.
    AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = Accelerator(mixed_precision=_MIXED[precision], cpu=on_cpu)
    _SCALER = accelerator.scaler
    return accelerator


def _modules(component: Any) -> Iterator[nn.Module]:
    for name in ("model", "net", "value_head"):
        module = getattr(component, name, None)
        if isinstance(module, nn.Module):
            yield module


def prepare_component(accelerator: Any | None, component: Any) -> None:
    """Put the component's torch modules under the accelerator's autocast (in place).

    What ``accelerator.prepare_model`` does for mixed precision, with accelerate's own
    helpers, but without its other step: in a multi-process run ``prepare_model`` would also
    wrap the module in ``DistributedDataParallel``, whose gradient hooks expect every forward
    to go through the wrapper; advx averages gradients itself (:mod:`advx.distributed`)."""
    if accelerator is None or component is None or not accelerator.native_amp:
        return
    from accelerate.utils import convert_outputs_to_fp32, get_mixed_precision_context_manager

    for module in _modules(component):
        if getattr(module, "_original_forward", None) is not None:  # not prepared twice
            continue
        autocast = get_mixed_precision_context_manager(True, accelerator.autocast_handler)
        module._original_forward = module.forward
        module.forward = MethodType(
            convert_outputs_to_fp32(autocast(module.forward.__func__)), module)


def current_scaler() -> torch.amp.GradScaler | None:
    """The fp16 loss scaler of the running recipe (None unless ``precision: fp16``)."""
    return _SCALER


def backward(loss: torch.Tensor) -> None:
    """``loss.backward()``, scaled first under fp16 (see the module docstring)."""
    if _SCALER is not None:
        _SCALER.scale(loss).backward()
    else:
        loss.backward()

"""Guards against non-finite numbers reaching the weights.

Every torch optimizer step in advx (PPO, GRPO/AdaGRPO, REINFORCE, SFT, classifier fitting)
goes through :func:`guarded_step`, so a NaN or infinite loss or gradient norm stops (or
skips) the update *before* ``optimizer.step()`` instead of silently corrupting the weights.
Written by hand: ``torch.nn.utils.clip_grad_norm_(error_if_nonfinite=True)`` raises a bare
RuntimeError that names neither the quantity nor the component.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from advx.errors import NonFiniteError

__all__ = ["adamw", "check_finite", "check_finite_terms", "guarded_step"]

FUSED_ADAMW_DEVICES = ("cpu", "cuda", "mps", "xpu")
"""Device types with torch's fused AdamW kernel (torch >= 2.4)."""


def check_finite(what: str, value: Tensor | float) -> None:
    """Raise :class:`NonFiniteError` naming ``what`` if ``value`` holds a NaN or ±inf."""
    if isinstance(value, Tensor):
        if bool(torch.isfinite(value).all()):
            return
        bad = value[~torch.isfinite(value)].flatten()[0].item()
        raise NonFiniteError(what, bad)
    if not math.isfinite(value):
        raise NonFiniteError(what, value)


def check_finite_terms(prefix: str, terms: Mapping[str, Tensor | float]) -> None:
    """:func:`check_finite` on every named term (e.g. the reward terms of a rollout)."""
    for name, value in terms.items():
        check_finite(f"{prefix}{name}", value)


def adamw(params: Iterable[Any], **kwargs: Any) -> torch.optim.AdamW:
    """``torch.optim.AdamW(params, **kwargs)`` with torch's fused kernel (``fused=True``) when
    every parameter is a floating-point tensor on a device that has one, else torch's default.

    Why: the default on CPU loops over the tensors in several passes over parameters,
    gradients and both moments; the fused kernel does one. Every data-parallel rank pays the
    whole step whatever its shard, and at the t5-small shape the default step took about a
    quarter of a PPO update (0.3 s vs 0.06 s fused on one CPU thread;
    ``benchmarks/scaling.py --phases``). The update is the same AdamW (equal to float
    rounding). ``params`` is a list of tensors or of parameter groups (dicts), as for AdamW.
    """
    params = [{**item, "params": _group_params(item["params"])} if isinstance(item, Mapping)
              else item for item in params]
    tensors = [t for item in params
               for t in (item["params"] if isinstance(item, dict) else [item])]
    fused = bool(tensors) and all(
        t.is_floating_point() and t.device.type in FUSED_ADAMW_DEVICES for t in tensors)
    if fused and "foreach" not in kwargs:
        kwargs.setdefault("fused", True)
    optimizer = torch.optim.AdamW(params, **kwargs)
    chosen = [{"fused": g["fused"], "foreach": g["foreach"]} for g in optimizer.param_groups]
    # a partial of a module function, not a lambda: the optimizer stays picklable
    optimizer.register_load_state_dict_post_hook(functools.partial(_keep_implementation,
                                                                   chosen=chosen))
    return optimizer


def _group_params(params: Any) -> list[Tensor]:
    """A group's ``params`` as a list; a single tensor is one parameter, as torch takes it
    (``list(tensor)`` would split it into its rows, non-leaf views AdamW refuses)."""
    return [params] if isinstance(params, Tensor) else list(params)


def _keep_implementation(optimizer: torch.optim.Optimizer,
                         chosen: list[dict[str, Any]]) -> None:
    """After ``load_state_dict``: keep the kernel :func:`adamw` chose. torch copies every
    saved group setting, ``fused``/``foreach`` included, so resuming a checkpoint written by
    torch's default AdamW (``fused: None``, an older run) would silently step unfused. The
    fused kernel wants each ``step`` as a float32 tensor on its parameter's device, where the
    default keeps it on the CPU."""
    for group, kernel in zip(optimizer.param_groups, chosen, strict=True):
        group.update(kernel)
        if kernel["fused"]:
            for p in group["params"]:
                step = optimizer.state.get(p, {}).get("step")
                if step is not None:
                    optimizer.state[p]["step"] = torch.as_tensor(
                        step, dtype=torch.float32, device=p.device)


def guarded_step(
    optimizer: torch.optim.Optimizer,
    parameters: Iterable[Tensor],
    *,
    loss: Tensor | None = None,
    max_norm: float | None = None,
    what: str = "",
) -> float:
    """Clip (when ``max_norm``), check, then step; returns the pre-clip gradient norm.

    Call after ``loss.backward()``. If ``loss`` or the gradient norm is not finite the
    gradients are zeroed, the optimizer does **not** step and :class:`NonFiniteError` is
    raised, naming ``what`` (e.g. ``"ppo loss"``). ``max_norm=None`` only measures the norm.
    Under ``precision: fp16`` (:mod:`advx.accel`) the gradients are unscaled first and an
    overflowing gradient norm makes the loss scaler skip the step instead of raising. In a
    data-parallel run the gradients (and the loss checked) are first averaged over the
    processes (:func:`advx.distributed.all_reduce_gradients`).
    """
    from advx.accel import current_scaler  # fp16 loss scaling (precision: fp16)
    from advx.distributed import all_reduce_gradients, is_distributed

    params = list(parameters)
    if is_distributed():  # data-parallel: average over the ranks first (advx.distributed)
        loss = all_reduce_gradients(params, loss)
    params = [p for p in params if p.grad is not None]
    label = f"{what} " if what else ""
    scaler = current_scaler()
    try:
        if loss is not None:
            check_finite(f"{label}loss", loss.detach())
        if scaler is not None:
            scaler.unscale_(optimizer)  # clip and check the true gradients
        norm = torch.nn.utils.clip_grad_norm_(
            params, max_norm if max_norm is not None else math.inf
        )
        if scaler is not None and not bool(torch.isfinite(norm)):
            # fp16 overflow: the scaler skips this step and lowers the scale (not an error)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            return float(norm)
        check_finite(f"{label}gradient norm", norm)
    except NonFiniteError:
        optimizer.zero_grad(set_to_none=True)
        raise
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return float(norm)

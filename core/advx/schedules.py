"""Learning-rate schedules with warmup, one config shape for every torch optimizer advx makes.

Every config block that owns a torch optimizer (the ``ppo``, ``grpo``, ``adagrpo`` and
``reinforce`` optimizers; the generators' SFT; the classifiers' fits) inherits
:class:`ScheduleConfig`, so the same four keys mean the same thing everywhere::

    optimizer: {name: ppo, lr: 1.0e-5, lr_scheduler: cosine, warmup_ratio: 0.1}

The schedule itself is ``transformers.get_scheduler`` (maintained, the one the HF ecosystem
uses), not hand-written multipliers. What one scheduler *step* is, and so what the total is:

* RL optimizers: one improvement step (one ``update()`` call). The total is the run's
  ``loop.rounds × loop.rl_steps`` unless ``schedule_steps`` sets it; the scheduler's state is
  in the optimizer's ``state_dict`` (checkpoints) and restored on ``--resume``.
* SFT and classifier fits: one optimizer step (minibatch) of one training call; the schedule
  spans that call (``epochs × minibatches``), so it restarts with each fit (a fit is never
  split across a checkpoint, so there is no state to save).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from advx.errors import ConfigError, did_you_mean

__all__ = [
    "SCHEDULERS",
    "ScheduleConfig",
    "check_schedule",
    "fit_scheduler",
    "load_scheduler",
    "make_scheduler",
    "rl_total_steps",
]

SCHEDULERS = (
    "constant",
    "constant_with_warmup",
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "inverse_sqrt",
)
"""The ``transformers`` schedule names advx accepts: those that need nothing but the warmup
and the total (``reduce_lr_on_plateau`` needs a metric, ``warmup_stable_decay`` more keys)."""

_NEED_TOTAL = {"linear", "cosine", "cosine_with_restarts", "polynomial"}


@dataclass(kw_only=True)
class ScheduleConfig:
    """The learning-rate schedule keys every optimizer-owning config block inherits.

    Attributes:
        lr_scheduler: one of :data:`SCHEDULERS` (``transformers.get_scheduler`` names);
            ``constant`` (default) keeps today's fixed learning rate. With any warmup,
            ``constant`` becomes ``constant_with_warmup``.
        warmup_steps: scheduler steps of linear warmup from 0 to ``lr`` (0 = none).
        warmup_ratio: warmup as a fraction of the total steps (used when
            ``warmup_steps`` is 0; setting both is an error).
        schedule_steps: the total the decaying schedules run over (0 = derived: the run's
            improvement steps for RL optimizers, the fit's minibatch steps for SFT and
            classifier fits).
    """

    lr_scheduler: str = "constant"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    schedule_steps: int = 0


def check_schedule(config: Any, where: str) -> None:
    """ConfigError naming ``where.key`` for a bad schedule key (called by factories at build
    time, so a typo fails before anything trains)."""
    name = getattr(config, "lr_scheduler", "constant")
    if name not in SCHEDULERS:
        raise ConfigError(
            f"{where}.lr_scheduler: unknown schedule {name!r}{did_you_mean(name, SCHEDULERS)}; "
            f"expected one of {', '.join(SCHEDULERS)}"
        )
    warmup_steps = getattr(config, "warmup_steps", 0)
    warmup_ratio = getattr(config, "warmup_ratio", 0.0)
    total = getattr(config, "schedule_steps", 0)
    if warmup_steps < 0:
        raise ConfigError(f"{where}.warmup_steps must be ≥ 0, got {warmup_steps}")
    if not 0.0 <= warmup_ratio < 1.0:
        raise ConfigError(f"{where}.warmup_ratio must be in [0, 1), got {warmup_ratio}")
    if warmup_steps and warmup_ratio:
        raise ConfigError(f"{where}: set warmup_steps or warmup_ratio, not both "
                          f"(got {warmup_steps} and {warmup_ratio})")
    if total < 0:
        raise ConfigError(f"{where}.schedule_steps must be ≥ 0, got {total}")


def rl_total_steps(ctx: Any) -> int | None:
    """``loop.rounds × loop.rl_steps`` of the run being built (None outside a run)."""
    loop = getattr(ctx, "loop", None)
    if loop is None:
        return None
    return int(loop.rounds) * int(loop.rl_steps)


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: Any, *, total_steps: int | None, where: str
) -> torch.optim.lr_scheduler.LRScheduler:
    """The schedule ``config`` asks for over ``optimizer`` (see the module docstring).

    ``total_steps``: the derived total (``config.schedule_steps`` wins when set); needed by
    the decaying schedules and by ``warmup_ratio``, a ConfigError when neither is known.
    """
    from transformers import get_scheduler  # heavy import: only when an optimizer is built

    check_schedule(config, where)
    name = getattr(config, "lr_scheduler", "constant")
    total = getattr(config, "schedule_steps", 0) or total_steps
    warmup_ratio = getattr(config, "warmup_ratio", 0.0)
    if total is None and (name in _NEED_TOTAL or warmup_ratio):
        raise ConfigError(
            f"{where}: lr_scheduler={name!r} (or warmup_ratio) needs the total number of "
            f"steps, which is not known here; set {where}.schedule_steps"
        )
    warmup = getattr(config, "warmup_steps", 0)
    if not warmup and warmup_ratio:
        warmup = math.ceil(warmup_ratio * int(total))  # type: ignore[arg-type]
    if name == "constant" and warmup:
        name = "constant_with_warmup"
    kwargs: dict[str, Any] = {"num_warmup_steps": warmup}
    if name in _NEED_TOTAL:
        kwargs["num_training_steps"] = max(int(total), 1)  # type: ignore[arg-type]
    return get_scheduler(name, optimizer, **kwargs)


def load_scheduler(
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: Any,
    *,
    base_lrs: list[float] | None = None,
) -> None:
    """Restore a scheduler's ``state_dict`` (absent in checkpoints from before schedules:
    then the schedule starts over) and put its current learning rate into the optimizer's
    groups, which the optimizer's own ``load_state_dict`` just overwrote. ``base_lrs``: the
    recipe's learning rates, when they should win over the checkpoint's."""
    if state is not None:
        scheduler.load_state_dict(dict(state))
    if base_lrs is not None:
        scheduler.base_lrs = list(base_lrs)
    lambdas = getattr(scheduler, "lr_lambdas", None)
    if lambdas is None:  # every transformers schedule is a LambdaLR; be safe with others
        return
    step = scheduler.last_epoch
    for group, base, fn in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, lambdas,
                               strict=True):
        group["lr"] = base * fn(step)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]


def fit_scheduler(
    optimizer: torch.optim.Optimizer, config: Any, *, examples: int, batch_size: int,
    epochs: int, where: str,
) -> torch.optim.lr_scheduler.LRScheduler:
    """The schedule of one supervised training call (SFT or a classifier fit): its total is
    ``epochs × ⌈examples / batch_size⌉`` optimizer steps; step it after every optimizer step.
    Over a persistent optimizer (SFT, the CNN) each call starts the schedule again from the
    optimizer's initial learning rate."""
    steps = epochs * max(math.ceil(examples / max(batch_size, 1)), 1)
    return make_scheduler(optimizer, config, total_steps=steps, where=where)

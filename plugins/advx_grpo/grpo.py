"""Optimizer ``grpo``: Group Relative Policy Optimization (Shao et al., 2024, DeepSeekMath).

For each prompt q the loop samples a group of G responses o_1..o_G (``loop.samples_per_prompt``)
with sequence rewards r_i. Then, with ρ_{i,t} = π_θ(o_{i,t}|q,o_{i,<t}) / π_θold(o_{i,t}|…):

    Â_i      = (r_i − mean_group(r)) / (std_group(r) + ε_std)            group-normalised advantage
    ℓ_{i,t}  = −min(ρ_{i,t} Â_i, clip(ρ_{i,t}, 1−ε_low, 1+ε_high) Â_i)  clipped surrogate
             + β · (π_ref/π_θ − log(π_ref/π_θ) − 1)        k3 estimator of KL(π_θ‖π_ref)
    L        = aggregate_{i,t}(ℓ_{i,t})

``loss_type`` picks the aggregation exactly as TRL's GRPOTrainer names them: ``grpo`` (mean
over each sequence's tokens, then over sequences), ``bnpo`` (mean over all tokens of the
minibatch), ``dapo`` (sum over tokens / tokens of the batch one optimizer step sees, TRL's
default: TRL's ``num_items_in_batch``; advx steps once per minibatch with no gradient
accumulation, so that is the minibatch's token count and ``dapo`` coincides with ``bnpo``),
``dr_grpo`` (sum over tokens / (B · max_new_tokens)). ``bias_correction_kl`` multiplies the k3
term by ρ (TRL's ``use_bias_correction_kl``, on by default there): the rollout was drawn from
π_old, not π_θ, so the KL estimate is importance-weighted. ``scale_rewards``: ``group``
(divide by the group's std, the paper), ``batch`` (by the batch std) or ``none`` (Dr. GRPO).
Standard deviation is the unbiased one, as TRL's (``torch.std``).

Works for any generator with ``policy_outputs`` (seq2seq and causal alike): the policy is
touched only through teacher-forced log-probs of the rollout's tokens. Minibatches: each epoch
draws its own permutation of the rollout's rows from a generator seeded by (seed, round,
step), so the order differs across epochs, steps and rounds and a resumed run repeats it;
the reported metrics are means over every minibatch step of the update.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from advx.accel import backward
from advx.choices import Choice
from advx.components import BuildContext, StepContext
from advx.errors import ConfigError
from advx.microbatch import AccumulationConfig, check_accumulation, micro_batches
from advx.numerics import adamw, guarded_step
from advx.rollout import Rewards, Rollout, masked_mean
from advx.schedules import ScheduleConfig, load_scheduler, make_scheduler, rl_total_steps
from torch import Tensor

__all__ = [
    "GRPOConfig",
    "GRPOOptimizer",
    "aggregate",
    "build_grpo",
    "check_grpo_config",
    "clipped_surrogate",
    "group_advantages",
    "k3_kl",
    "per_token_grpo_loss",
]


class LossType(Choice):
    """``optimizer.loss_type``: how per-token terms are averaged (module docstring)."""

    grpo = "grpo"
    bnpo = "bnpo"
    dapo = "dapo"
    dr_grpo = "dr_grpo"


class ScaleRewards(Choice):
    """``optimizer.scale_rewards``: the advantage's standard deviation."""

    group = "group"
    batch = "batch"
    none = "none"


@dataclass
class GRPOConfig(ScheduleConfig, AccumulationConfig):
    """The ``optimizer:`` block for ``name: grpo``.

    Attributes:
        lr: AdamW learning rate.
        epsilon: lower clip ε_low (and upper when ``epsilon_high`` is 0).
        epsilon_high: upper clip ε_high (DAPO's clip-higher); 0 = same as ``epsilon``.
        beta: weight of the k3 KL to the reference policy (needs ``loop.use_reference``).
        epochs: passes μ over each rollout (π_old stays the sampling policy).
        minibatch_size: rows per gradient step (0 = the whole rollout).
        loss_type: ``grpo``, ``bnpo``, ``dapo`` or ``dr_grpo`` (see the module docstring).
        bias_correction_kl: importance-weight the k3 term by ρ (TRL's default).
        scale_rewards: ``group``, ``batch`` or ``none``.
        max_grad_norm: gradient clipping.
        max_new_tokens: the T of ``dr_grpo``'s normaliser (0 = the rollout's width).
        lr_scheduler, warmup_steps, warmup_ratio, schedule_steps: the learning-rate schedule
            (:class:`advx.schedules.ScheduleConfig`), one scheduler step per improvement step.
        grad_accum_steps: micro-batches per minibatch (:mod:`advx.microbatch`; 1 = none;
            ``grpo`` only, not ``adagrpo``).
    """

    lr: float = 1e-4
    epsilon: float = 0.2
    epsilon_high: float = 0.0
    beta: float = 0.04
    epochs: int = 1
    minibatch_size: int = 0
    loss_type: LossType = LossType.grpo
    bias_correction_kl: bool = False
    scale_rewards: ScaleRewards = ScaleRewards.group
    max_grad_norm: float = 1.0
    max_new_tokens: int = 0


def group_advantages(
    rewards: Tensor, group_ids: Tensor, scale: str = "group", eps: float = 1e-4
) -> Tensor:
    """``[B]`` Â_i = (r_i − mean of i's group) / (std + eps); std per group, per batch or 1."""
    _, inverse = torch.unique(group_ids, return_inverse=True)
    n_groups = int(inverse.max()) + 1
    counts = torch.zeros(n_groups, device=rewards.device).index_add_(
        0, inverse, torch.ones_like(rewards)
    )
    means = torch.zeros(n_groups, device=rewards.device).index_add_(0, inverse, rewards) / counts
    centred = rewards - means[inverse]
    if scale == "none":
        return centred
    if scale == "batch":
        return centred / (rewards.std() + eps)
    if scale != "group":
        raise ConfigError(f"optimizer.scale_rewards must be group, batch or none, got {scale!r}")
    sq = torch.zeros(n_groups, device=rewards.device).index_add_(0, inverse, centred**2)
    std = (sq / (counts - 1).clamp(min=1)).sqrt()  # unbiased, as torch.std
    return centred / (std[inverse] + eps)


def clipped_surrogate(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, eps_low: float, eps_high: float
) -> Tensor:
    """``[B, T]`` −min(ρ Â, clip(ρ, 1−ε_low, 1+ε_high) Â), ρ = exp(log π_θ − log π_old)."""
    ratio = torch.exp(logprobs - old_logprobs)
    adv = advantages.unsqueeze(-1)
    return -torch.min(ratio * adv, torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * adv)


def k3_kl(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """``[B, T]`` k3 = π_ref/π_θ − log(π_ref/π_θ) − 1 ≥ 0 (Schulman's unbiased, low-variance KL)."""
    delta = ref_logprobs - logprobs
    return torch.exp(delta) - delta - 1


def aggregate(per_token: Tensor, mask: Tensor, loss_type: str, max_len: int = 0,
              num_items: Tensor | float | None = None) -> Tensor:
    """Reduce ``[B, T]`` token losses to a scalar the way TRL's ``loss_type`` does.

    ``num_items``: ``dapo``'s normaliser, the tokens of the batch one optimizer step sees
    (default: this batch's, which is what :class:`GRPOOptimizer` steps on).
    """
    mask = mask.to(per_token.dtype)
    if loss_type == "grpo":
        return masked_mean(per_token, mask, dim=-1).mean()
    if loss_type == "bnpo":
        return masked_mean(per_token, mask)
    if loss_type == "dapo":
        total = mask.sum() if num_items is None else torch.as_tensor(num_items)
        return (per_token * mask).sum() / total.clamp(min=1.0)
    if loss_type == "dr_grpo":
        return (per_token * mask).sum() / (per_token.shape[0] * (max_len or per_token.shape[1]))
    raise ConfigError(
        f"optimizer.loss_type must be grpo, bnpo, dapo or dr_grpo, got {loss_type!r}"
    )


def per_token_grpo_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    ref_logprobs: Tensor | None,
    eps_low: float,
    eps_high: float,
    beta: float,
    bias_correction_kl: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """``[B, T]`` ℓ_{i,t} (clipped surrogate + β·k3) and the ``[B, T]`` k3 term (or None)."""
    loss = clipped_surrogate(logprobs, old_logprobs, advantages, eps_low, eps_high)
    if beta == 0.0 or ref_logprobs is None:
        return loss, None
    kl = k3_kl(logprobs, ref_logprobs)
    if bias_correction_kl:
        kl = kl * torch.exp(logprobs - old_logprobs)
    return loss + beta * kl, kl


class GRPOOptimizer:
    """GRPO on any advx generator (see the module docstring). AdaGRPO subclasses it."""

    name = "grpo"
    """Names the optimizer in non-finite-value errors."""

    def __init__(self, config: GRPOConfig, generator: Any, seed: int = 0,
                 *, total_steps: int | None = None) -> None:
        self.config = config
        self.seed = seed
        self.eps_high = config.epsilon_high or config.epsilon
        self.optimizer = adamw(generator.parameters(), lr=config.lr)
        self.scheduler = make_scheduler(self.optimizer, config, total_steps=total_steps,
                                        where="optimizer")

    def loss(self, generator: Any, rollout: Rollout, advantages: Tensor,
             num_items: Tensor | None = None) -> tuple[Tensor, dict]:
        """The GRPO loss of one (mini)batch under the current policy, with diagnostics."""
        cfg = self.config
        mask = rollout.response_mask
        logprobs = generator.policy_outputs(rollout).logprobs
        per_token, kl = per_token_grpo_loss(
            logprobs, rollout.logprobs, advantages, rollout.ref_logprobs,
            cfg.epsilon, self.eps_high, cfg.beta, cfg.bias_correction_kl,
        )
        loss = aggregate(per_token, mask, cfg.loss_type, cfg.max_new_tokens, num_items)
        with torch.no_grad():
            ratio = torch.exp(logprobs - rollout.logprobs)
            adv = advantages.unsqueeze(-1).expand_as(ratio)
            low = (ratio < 1 - cfg.epsilon) & (adv < 0)
            clipped = low | ((ratio > 1 + self.eps_high) & (adv > 0))
            info = {
                "grpo/clip_fraction": float(masked_mean(clipped.float(), mask)),
                "grpo/kl": float(masked_mean(kl, mask)) if kl is not None else 0.0,
                "grpo/ratio": float(masked_mean(ratio, mask)),
            }
        return loss, info

    def step(self, generator: Any, loss: Tensor) -> float:
        """Backward, clip, check for non-finite values, step; the pre-clip gradient norm."""
        self.optimizer.zero_grad()
        backward(loss)
        return guarded_step(self.optimizer, generator.parameters(), loss=loss,
                            max_norm=self.config.max_grad_norm, what=self.name)

    def accumulated_step(self, generator: Any, batch: Rollout,
                         advantages: Tensor) -> tuple[Tensor, dict]:
        """One optimizer step on ``batch``, in ``grad_accum_steps`` micro-batches: each loss
        weighted by its share of what ``loss_type`` averages over (tokens for ``bnpo`` and
        ``dapo``, rows for ``grpo`` and ``dr_grpo``), so the gradient is the whole batch's
        (:mod:`advx.microbatch`). Returns the batch's loss and diagnostics."""
        cfg = self.config
        parts = micro_batches(batch.batch_size, cfg.grad_accum_steps, advantages.device)
        if len(parts) == 1:
            loss, info = self.loss(generator, batch, advantages)
            info["grpo/grad_norm"] = self.step(generator, loss)
            return loss, info
        self.optimizer.zero_grad()
        mask = batch.response_mask.float()
        by_tokens = cfg.loss_type in ("bnpo", "dapo")
        total = mask.sum().clamp(min=1.0) if by_tokens else float(batch.batch_size)
        loss_sum = torch.zeros((), device=mask.device)
        info_sum: dict[str, float] = {}
        for rows in parts:
            part_loss, part_info = self.loss(generator, batch.select(rows), advantages[rows])
            share = mask[rows].sum() / total if by_tokens else len(rows) / total
            backward(part_loss * share)
            loss_sum = loss_sum + part_loss.detach() * share
            for key, value in part_info.items():
                info_sum[key] = info_sum.get(key, 0.0) + value * float(share)
        info_sum["grpo/grad_norm"] = guarded_step(
            self.optimizer, generator.parameters(), loss=loss_sum,
            max_norm=cfg.max_grad_norm, what=self.name)
        return loss_sum, info_sum

    def minibatch_orders(self, batch_size: int, round: int, step: int) -> list[Tensor]:
        """One row order per epoch: a permutation drawn from a generator seeded by
        (seed, round, step) when minibatching, else the rows in order."""
        size = self.config.minibatch_size or batch_size
        if size >= batch_size:
            return [torch.arange(batch_size)] * self.config.epochs
        entropy = [self.seed % 2**63, max(round, 0), max(step, 0)]
        seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
        generator = torch.Generator().manual_seed(seed)
        return [torch.randperm(batch_size, generator=generator)
                for _ in range(self.config.epochs)]

    def update(self, rollout: Rollout, rewards: Rewards, ctx: StepContext) -> dict[str, float]:
        cfg = self.config
        if cfg.beta > 0 and rollout.ref_logprobs is None:
            raise ConfigError("optimizer.beta > 0 needs loop.use_reference: true (π_ref log-probs)")
        advantages = group_advantages(rewards.total, rollout.group_ids, cfg.scale_rewards)
        size = cfg.minibatch_size or rollout.batch_size
        history: dict[str, list[float]] = {}
        for order in self.minibatch_orders(rollout.batch_size, ctx.round, ctx.step):
            for start in range(0, rollout.batch_size, size):
                rows = order[start : start + size]
                loss, info = self.accumulated_step(ctx.generator, rollout.select(rows),
                                                   advantages[rows])
                info["grpo/loss"] = float(loss.detach())
                for key, value in info.items():
                    history.setdefault(key, []).append(value)
        metrics = {key: float(np.mean(values)) for key, values in history.items()}
        metrics["grpo/advantage_abs"] = float(advantages.abs().mean())
        metrics["grpo/zero_std_groups"] = _zero_std_share(rewards.total, rollout.group_ids)
        return self.advance_schedule(metrics)

    def advance_schedule(self, metrics: dict[str, float]) -> dict[str, float]:
        """Record the learning rate this update used (``grpo/lr``) and step the schedule;
        called once at the end of every successful update."""
        metrics["grpo/lr"] = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        # the recipe's lr wins over the checkpoint's, at the checkpoint's point of the schedule
        load_scheduler(self.scheduler, state.get("scheduler"),
                       base_lrs=[self.config.lr] * len(self.optimizer.param_groups))


def _zero_std_share(rewards: Tensor, group_ids: Tensor) -> float:
    """Share of groups whose rewards are all equal (no learning signal)."""
    groups = torch.unique(group_ids)
    flat = [bool((rewards[group_ids == g] == rewards[group_ids == g][0]).all()) for g in groups]
    return sum(flat) / max(len(flat), 1)


def check_grpo_config(config: GRPOConfig, ctx: BuildContext, name: str = "grpo") -> None:
    """The build-time checks GRPO and AdaGRPO share: a generator, known string choices."""
    if ctx.generator is None:
        raise ConfigError(f"optimizer {name} needs a generator")
    check_accumulation(config, "optimizer")
    if name == "adagrpo" and config.grad_accum_steps != 1:
        raise ConfigError("optimizer.grad_accum_steps: adagrpo's gated per-group loss does not "
                          "split into micro-batches; leave it at 1 (grpo supports it)")


def build_grpo(config: GRPOConfig, ctx: BuildContext) -> GRPOOptimizer:
    check_grpo_config(config, ctx)
    return GRPOOptimizer(config, ctx.generator, ctx.seed, total_steps=rl_total_steps(ctx))

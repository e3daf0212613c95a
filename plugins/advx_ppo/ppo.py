"""Proximal Policy Optimization for token-level policies, written for encoder-decoder models.

TRL 1.x no longer ships a PPO trainer and never supported seq2seq policies, so the update is
written here (cleanRL style: one file, the loss lines mirror the equations). The policy is
touched through the ``Generator`` protocol (``policy_outputs`` and ``parameters``); the critic
needs the :class:`advx.components.HasValueHead` capability (seq2seq has it), checked when the
optimizer is built. Any generator works with ``vf_coef: 0`` (no critic: V_old = 0, so the
advantages are the whitened returns). TRL's model-agnostic helpers do the log-softmax and
entropy inside the generators.

Per rollout (B sequences, T tokens, mask m_t = 1 on generated tokens, EOS included):

    δ_t   = r_t + γ V_old(s_{t+1}) − V_old(s_t)            (V_old = 0 past the last token)
    A_t   = Σ_k (γλ)^k δ_{t+k}                              GAE(γ, λ)
    R_t   = A_t + V_old(s_t)                                value targets (returns)
    Â_t   = (A_t − mean(A)) / std(A)                         whitening over masked tokens

then for ``epochs`` passes over shuffled minibatches:

    ρ_t     = exp(log π_θ(a_t|s_t) − log π_old(a_t|s_t))
    L_clip  = −E[min(ρ_t Â_t, clip(ρ_t, 1−ε, 1+ε) Â_t)]
    L_V     = ½ E[max((V_θ − R_t)², (V_old + clip(V_θ − V_old, −ε_V, ε_V) − R_t)²)]
    L       = L_clip + c_V L_V − c_H E[H(π_θ(·|s_t))]

with ∇ clipped to ``max_grad_norm``. Before GAE, ``reward_norm`` may normalise the rewards with
running statistics of the sequence returns G = Σ_t r_t (as TRL's old PPOTrainer did with
``use_score_scaling``/``use_score_norm``): ``scale`` divides every r_t by std(G); ``norm`` also
subtracts mean(G) from each row's last-token reward first. Every row has exactly one last token,
so the shift is a constant baseline (the expected policy gradient is unchanged) and the division
one scalar (the reward terms keep their relative weights). Training stops early once the
approximate KL E[(ρ−1) − log ρ] exceeds ``target_kl`` (when set). log π_old, V_old and the
reference log-probs come from the rollout and are never recomputed; E[·] is the mean over
masked tokens.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from advx.accel import backward
from advx.choices import Choice
from advx.components import BuildContext, HasValueHead, StepContext, require
from advx.distributed import mean_across
from advx.errors import ConfigError, NonFiniteError
from advx.microbatch import AccumulationConfig, check_accumulation, micro_batches
from advx.numerics import adamw, guarded_step
from advx.rollout import Rewards, Rollout, masked_mean
from advx.schedules import ScheduleConfig, load_scheduler, make_scheduler, rl_total_steps
from torch import Tensor

__all__ = [
    "PPO",
    "PPOConfig",
    "build_ppo",
    "gae",
    "policy_loss",
    "value_loss",
    "whiten",
]


class RewardNorm(Choice):
    """``optimizer.reward_norm`` of ``ppo``."""

    norm = "norm"
    scale = "scale"
    none = "none"


@dataclass
class PPOConfig(ScheduleConfig, AccumulationConfig):
    """The ``optimizer:`` block for ``name: ppo``.

    Attributes:
        lr, weight_decay: AdamW over ``generator.parameters()`` (value head included).
        value_lr: learning rate of the value head's parameters when the generator exposes
            them as ``value_parameters()`` (seq2seq does): a freshly initialised linear head
            needs a larger step than the pretrained policy (0 = same as ``lr``).
        epochs: passes over each rollout.
        minibatch_size: rows per minibatch (0 = the whole rollout in one minibatch).
        clip: ε of the clipped surrogate.
        value_clip: ε_V of the clipped value loss (0 = unclipped value loss).
        vf_coef: c_V, weight of the value loss; > 0 needs a generator with a value head
            (``HasValueHead``), 0 trains without a critic.
        ent_coef: c_H, weight of the entropy bonus.
        gamma, lam: discount γ and GAE λ.
        whiten_advantages: normalise advantages over the rollout's tokens.
        max_grad_norm: gradient-norm clip (0 = off).
        target_kl: stop the epochs once approx-KL exceeds this (0 = never).
        reward_norm: ``norm`` (default): r_T −= mean(G), then r_t /= std(G), with running
            mean/std of the sequence returns G over all updates so far (saved in
            ``state_dict``); ``scale``: only r_t /= std(G); ``none``. Keeps value targets
            centred and O(1) whatever the reward's offset and scale (cls_loss's
            −(1−α)·log P_gen is a large positive offset), so the value loss of a zero-initialised
            value head does not swamp the policy gradient under the shared gradient-norm clip.
        lr_scheduler, warmup_steps, warmup_ratio, schedule_steps: the learning-rate schedule
            (:class:`advx.schedules.ScheduleConfig`), one scheduler step per improvement step.
        grad_accum_steps: micro-batches per minibatch (:mod:`advx.microbatch`; 1 = none).
    """

    lr: float = 1.0e-4
    weight_decay: float = 0.0
    value_lr: float = 1.0e-3
    epochs: int = 4
    minibatch_size: int = 0
    clip: float = 0.2
    value_clip: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    gamma: float = 1.0
    lam: float = 0.95
    whiten_advantages: bool = True
    max_grad_norm: float = 1.0
    target_kl: float = 0.0
    reward_norm: RewardNorm = RewardNorm.norm




class RunningMoments:
    """Running mean and standard deviation (Welford's algorithm) of every value seen."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, values: Tensor) -> None:
        for x in values.detach().double().flatten().tolist():
            self.count += 1
            delta = x - self.mean
            self.mean += delta / self.count
            self.m2 += delta * (x - self.mean)

    @property
    def std(self) -> float:
        if self.count < 2:
            return 1.0
        return max(math.sqrt(self.m2 / (self.count - 1)), 1e-8)

    def state_dict(self) -> dict[str, float]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        self.count, self.mean, self.m2 = int(state["count"]), state["mean"], state["m2"]


def gae(
    rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over right-padded sequences.

    Args: ``rewards``, ``values``, ``mask``: ``[B, T]``. Returns ``(advantages, returns)``,
    both ``[B, T]`` and 0 on padding. Padding after the last token contributes V = 0, r = 0,
    so the recursion needs no per-row lengths.
    """
    mask = mask.to(values.dtype)
    values, rewards = values * mask, rewards * mask
    advantages = torch.zeros_like(values)
    next_advantage = torch.zeros_like(values[:, 0])
    T = values.shape[1]
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(values[:, t])
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = delta + gamma * lam * next_advantage
        advantages[:, t] = next_advantage
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def whiten(values: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """``(x − mean) / std`` over masked positions; 0 on padding."""
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    return (values - mean) * torch.rsqrt(var + eps) * mask.to(values.dtype)


def policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, clip: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped surrogate ``−E[min(ρÂ, clip(ρ, 1−ε, 1+ε)Â)]`` and its diagnostics."""
    log_ratio = (logprobs - old_logprobs) * mask
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * advantages
    loss = -masked_mean(torch.min(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask),
            "clipfrac": masked_mean(((ratio - 1.0).abs() > clip).float(), mask),
            "ratio": masked_mean(ratio, mask),
        }
    return loss, stats


def value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip: float
) -> Tensor:
    """``½ E[max((V − R)², (V_old + clip(V − V_old, −ε_V, ε_V) − R)²)]`` (ε_V = 0: unclipped)."""
    unclipped = (values - returns) ** 2
    if clip <= 0:
        return 0.5 * masked_mean(unclipped, mask)
    clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
    return 0.5 * masked_mean(torch.max(unclipped, (clipped_values - returns) ** 2), mask)


class PPO:
    """``Optimizer`` protocol: ``update(rollout, rewards, ctx)`` steps ``ctx.generator``."""

    def __init__(self, config: PPOConfig, parameters: Any, value_parameters: Any = (),
                 *, total_steps: int | None = None) -> None:
        self.config = config
        self.params = [p for p in parameters if p.requires_grad]
        if not self.params:
            raise ConfigError("optimizer ppo: the generator has no trainable parameters.")
        value_ids = {id(p) for p in value_parameters}
        groups = [{"params": [p for p in self.params if id(p) not in value_ids]}]
        value_group = [p for p in self.params if id(p) in value_ids]
        if value_group:
            groups.append({"params": value_group, "lr": config.value_lr or config.lr})
        self.optimizer = adamw(groups, lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, config, total_steps=total_steps,
                                        where="optimizer")
        self.return_stats = RunningMoments()

    def _minibatches(self, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
        size = self.config.minibatch_size or batch_size
        order = rng.permutation(batch_size)
        return [order[i : i + size] for i in range(0, batch_size, size)]

    def _normalise(self, rewards: Rewards, rollout: Rollout) -> tuple[Tensor, float, float]:
        """``(per_token, shift, scale)``: (r − shift·1[t = T]) / scale, see ``reward_norm``."""
        per_token = rewards.per_token.float().clone()
        if self.config.reward_norm == "none":
            return per_token, 0.0, 1.0
        self.return_stats.update(rewards.total)
        shift = self.return_stats.mean if self.config.reward_norm == "norm" else 0.0
        rows = torch.arange(rollout.batch_size, device=per_token.device)
        per_token[rows, rollout.last_index] -= shift
        scale = self.return_stats.std
        return per_token / scale, shift, scale

    def _step(
        self,
        generator: Any,
        batch: Rollout,
        mask: Tensor,
        advantages: Tensor,
        returns: Tensor,
        old_values: Tensor | None,
    ) -> dict[str, float]:
        """One minibatch: L = L_clip + c_V·L_V − c_H·H, clipped gradient, one AdamW step.

        With ``grad_accum_steps`` > 1 the minibatch's rows run in micro-batches, each loss
        weighted by its share of the minibatch's tokens (every term is a token mean), so the
        accumulated gradient is the whole minibatch's (:mod:`advx.microbatch`)."""
        cfg = self.config
        self.optimizer.zero_grad(set_to_none=True)
        total_tokens = mask.sum().clamp(min=1.0)
        sums: dict[str, Tensor] = {}
        for rows in micro_batches(batch.batch_size, cfg.grad_accum_steps, mask.device):
            part = batch if len(rows) == batch.batch_size else batch.select(rows)
            m = mask[rows]
            share = m.sum() / total_tokens
            out = generator.policy_outputs(part)
            pg, stats = policy_loss(out.logprobs, part.logprobs, advantages[rows], m, cfg.clip)
            vf = torch.zeros((), device=mask.device)
            if old_values is not None and out.values is not None:
                vf = value_loss(out.values, old_values[rows], returns[rows], m, cfg.value_clip)
            ent = masked_mean(out.entropy, m)
            part_loss = pg + cfg.vf_coef * vf - cfg.ent_coef * ent
            backward(part_loss * share)
            terms = {"pg": pg, "vf": vf, "ent": ent, "loss": part_loss, **stats}
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value.detach() * share
        pg_loss, vf_loss, entropy = sums.pop("pg"), sums.pop("vf"), sums.pop("ent")
        loss, stats = sums.pop("loss"), sums
        max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else None
        grad_norm = guarded_step(self.optimizer, self.params, loss=loss, max_norm=max_norm,
                                 what="ppo")
        return {
            "loss/policy": pg_loss.item(),
            "loss/value": vf_loss.item(),
            "loss/total": loss.item(),
            "entropy": entropy.item(),
            "grad_norm": float(grad_norm),
            **{k: v.item() for k, v in stats.items()},
        }

    def update(self, rollout: Rollout, rewards: Rewards, ctx: StepContext) -> dict[str, float]:
        """GAE on the rollout's rewards and old values, then clipped-PPO minibatch epochs.

        A non-finite loss or gradient stops the update (``NonFiniteError``) and leaves the
        running reward statistics as they were, so a skipped update does not poison the next.
        """
        saved = self.return_stats.state_dict()
        try:
            metrics = self._update(rollout, rewards, ctx)
        except NonFiniteError:
            self.return_stats.load_state_dict(saved)
            raise
        metrics["ppo/lr"] = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        return metrics

    def _update(self, rollout: Rollout, rewards: Rewards, ctx: StepContext) -> dict[str, float]:
        cfg = self.config
        mask = rollout.response_mask.to(torch.float32)
        has_critic = rollout.values is not None
        old_values = rollout.values if has_critic else torch.zeros_like(mask)
        per_token, shift, scale = self._normalise(rewards, rollout)
        advantages, returns = gae(per_token, old_values.float(), mask, cfg.gamma, cfg.lam)
        if cfg.whiten_advantages:
            advantages = whiten(advantages, mask)

        history: dict[str, list[float]] = {}
        early_stopped = False
        epochs_done = 0
        for _ in range(cfg.epochs):
            for rows in self._minibatches(rollout.batch_size, ctx.rng):
                index = torch.as_tensor(rows, device=mask.device)
                stats = self._step(
                    ctx.generator, rollout.select(index), mask[index], advantages[index],
                    returns[index], old_values[index] if has_critic else None,
                )  # fmt: skip
                for key, value in stats.items():
                    history.setdefault(key, []).append(value)
                # data-parallel: every rank stops alike, on the mean over the shards
                if cfg.target_kl > 0 and mean_across(stats["approx_kl"]) > cfg.target_kl:
                    early_stopped = True
                    break
            epochs_done += 1
            if early_stopped:
                break

        metrics = {f"ppo/{k}": float(np.mean(v)) for k, v in history.items()}
        metrics["ppo/approx_kl_last"] = history["approx_kl"][-1]
        metrics["ppo/epochs"] = float(epochs_done)
        metrics["ppo/early_stopped"] = float(early_stopped)
        metrics["ppo/reward_shift"] = shift
        metrics["ppo/reward_scale"] = scale
        metrics["ppo/advantage_mean_raw"] = float(masked_mean(returns - old_values, mask))
        metrics["ppo/return_mean"] = float(masked_mean(returns, mask))
        if has_critic:
            residual = masked_mean((returns - old_values) ** 2, mask)
            variance = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
            metrics["ppo/value_explained_var"] = float(1.0 - residual / variance.clamp(min=1e-8))
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "return_stats": self.return_stats.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if "return_stats" in state:
            self.return_stats.load_state_dict(state["return_stats"])
        load_scheduler(self.scheduler, state.get("scheduler"))


def build_ppo(config: PPOConfig, ctx: BuildContext) -> PPO:
    if ctx.generator is None:
        raise ConfigError("optimizer ppo needs a generator: add a `generator:` block.")
    if config.epochs < 1 or config.clip <= 0:
        raise ConfigError(
            f"optimizer ppo: epochs must be >= 1 and clip > 0 (got {config.epochs}, {config.clip})."
        )
    check_accumulation(config, "optimizer")
    if config.vf_coef > 0:
        require(ctx.generator, HasValueHead, role=ctx.describe("generator"),
                needed_by="optimizer 'ppo' with vf_coef > 0 (the critic; set "
                          "optimizer.vf_coef=0 to train without one)")
    has_head = isinstance(ctx.generator, HasValueHead)  # declared capability, optional at c_V=0
    value_parameters = ctx.generator.value_parameters() if has_head else ()
    return PPO(config, ctx.generator.parameters(), value_parameters,
               total_steps=rl_total_steps(ctx))

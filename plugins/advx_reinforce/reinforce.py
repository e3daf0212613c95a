"""REINFORCE with a baseline (Williams, 1992): the SeqGAN generator update.

    G_t = Σ_{t' ≥ t} r_t'                     (returns: reward_to_go; ``immediate``: G_t = r_t)
    L(θ) = − mean_{b,t} [ (G_{b,t} − b_{b,t}) · log π_θ(y_{b,t} | y_{b,<t}) ] − β · mean H(π_θ)

with the baseline b one of
    none            b = 0
    moving_average  b = EMA of the batch-mean return  (b ← m·b + (1 − m)·mean G, used before update)
    batch_mean      b_t = mean over the batch of G_{·,t}      (per position)
    leave_one_out   b_{i,t} = mean over the OTHER rows of i's group of G_{·,t}  (RLOO; a
                    group of one gets b = 0)

With ``mc_rollout``'s telescoped rewards, G_t = Q(y_1:t) and baseline ``none`` is exactly
SeqGAN's update.

Teacher forcing (Li et al., EMNLP 2017, "Adversarial Learning for Neural Dialogue
Generation"; ``teacher_forcing: k``): k real sequences from
``task.generator_train()`` join every update with return ``teacher_forcing_reward`` (1.0, the
highest a discriminator gives) on every token, minus the batch-mean baseline, so the
generator sees what a high reward looks like.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from advx.accel import backward
from advx.choices import Choice
from advx.components import BuildContext, StepContext
from advx.errors import ConfigError
from advx.microbatch import AccumulationConfig, check_accumulation, micro_batches
from advx.numerics import guarded_step
from advx.rollout import Rewards, Rollout, masked_mean
from advx.schedules import ScheduleConfig, load_scheduler, make_scheduler, rl_total_steps
from torch import Tensor


class Baseline(Choice):
    """``optimizer.baseline`` of ``reinforce``."""

    none = "none"
    moving_average = "moving_average"
    batch_mean = "batch_mean"
    leave_one_out = "leave_one_out"


class Returns(Choice):
    """``optimizer.returns`` of ``reinforce``."""

    reward_to_go = "reward_to_go"
    immediate = "immediate"


@dataclass
class ReinforceConfig(ScheduleConfig, AccumulationConfig):
    """The ``optimizer:`` block for ``name: reinforce``.

    Attributes:
        lr: Adam learning rate (SeqGAN: 0.01).
        max_grad_norm: gradient-norm clip (SeqGAN: 5.0; 0 = off).
        baseline: ``none`` | ``moving_average`` | ``batch_mean`` | ``leave_one_out``.
        baseline_momentum: m of the moving average.
        returns: ``reward_to_go`` (G_t = Σ_{t'≥t} r_t') or ``immediate`` (G_t = r_t).
        entropy_coef: β of the entropy bonus (0 = off).
        teacher_forcing: real sequences mixed into each update (0 = off).
        teacher_forcing_reward: the return given to every token of a real sequence.
        lr_scheduler, warmup_steps, warmup_ratio, schedule_steps: the learning-rate schedule
            (:class:`advx.schedules.ScheduleConfig`), one scheduler step per improvement step.
        grad_accum_steps: micro-batches per update (:mod:`advx.microbatch`; 1 = none).
    """

    lr: float = 0.01
    max_grad_norm: float = 5.0
    baseline: Baseline = Baseline.none
    baseline_momentum: float = 0.9
    returns: Returns = Returns.reward_to_go
    entropy_coef: float = 0.0
    teacher_forcing: int = 0
    teacher_forcing_reward: float = 1.0


def reward_to_go(per_token: Tensor, mask: Tensor) -> Tensor:
    """``G [B, T]``: G_t = Σ_{t' ≥ t} r_t' over unmasked tokens."""
    r = per_token * mask
    return r.flip(-1).cumsum(-1).flip(-1) * mask


def leave_one_out(returns: Tensor, mask: Tensor, groups: Tensor) -> Tensor:
    """``b [B, T]``: per position, the mean return of the other members of each row's group."""
    mask = mask.to(returns)
    n_groups = int(groups.max()) + 1
    index = groups[:, None].expand_as(returns)
    group_sum = torch.zeros(n_groups, returns.shape[1]).to(returns).scatter_add_(
        0, index, returns * mask
    )
    group_cnt = torch.zeros_like(group_sum).scatter_add_(0, index, mask)
    others = (group_cnt[groups] - mask).clamp(min=1.0)
    return (group_sum[groups] - returns * mask) / others * (group_cnt[groups] - mask > 0)


class Reinforce:
    """The ``reinforce`` optimizer; satisfies ``advx.Optimizer``."""

    def __init__(self, config: ReinforceConfig, parameters,
                 *, total_steps: int | None = None) -> None:
        check_accumulation(config, "optimizer")
        self.config = config
        self.params = list(parameters)
        self.adam = torch.optim.Adam(self.params, lr=config.lr)
        self.scheduler = make_scheduler(self.adam, config, total_steps=total_steps,
                                        where="optimizer")
        self.moving_baseline: float | None = None

    # ----------------------------------------------------------------- the equation
    def returns(self, rewards: Rewards, mask: Tensor) -> Tensor:
        if self.config.returns == "immediate":
            return rewards.per_token * mask
        return reward_to_go(rewards.per_token, mask)

    def baseline(self, returns: Tensor, mask: Tensor, groups: Tensor) -> Tensor:
        kind = self.config.baseline
        if kind == "none":
            return torch.zeros_like(returns)
        if kind == "batch_mean":
            return masked_mean(returns, mask, dim=0)[None, :].expand_as(returns)
        if kind == "leave_one_out":
            return leave_one_out(returns, mask, groups)
        current = float(masked_mean(returns, mask))  # moving_average
        previous = current if self.moving_baseline is None else self.moving_baseline
        m = self.config.baseline_momentum
        self.moving_baseline = m * previous + (1 - m) * current
        return torch.full_like(returns, previous)

    def update(self, rollout: Rollout, rewards: Rewards, ctx: StepContext) -> dict[str, float]:
        mask = rollout.response_mask.to(rewards.per_token)
        G = self.returns(rewards, mask)
        b = self.baseline(G, mask, rollout.group_ids.to(G.device))
        advantage = (G - b).detach()

        # L = −Σ(A·log π·m)/tokens − β·Σ(H·m)/Σm, both sums split over micro-batches when
        # grad_accum_steps > 1 (each part divided by the whole batch's counts: the same
        # gradient, advx.microbatch); the teacher-forcing term joins the first part
        tokens = mask.sum()
        extra: Tensor | float = 0.0
        if self.config.teacher_forcing:
            tf_weighted, tf_tokens = self._teacher_forcing(ctx, float(masked_mean(b, mask)))
            tokens = tokens + tf_tokens
            extra = -tf_weighted / tokens
        self.adam.zero_grad()
        loss = torch.zeros((), device=mask.device)
        entropy_sum = torch.zeros((), device=mask.device)
        for rows in micro_batches(rollout.batch_size, self.config.grad_accum_steps, mask.device):
            part = rollout if len(rows) == rollout.batch_size else rollout.select(rows)
            out = ctx.generator.policy_outputs(part)
            weighted = (advantage[rows] * out.logprobs * mask[rows]).sum()
            entropy_term = (out.entropy * mask[rows]).sum()
            part_loss = (extra - weighted / tokens
                         - self.config.entropy_coef * entropy_term / mask.sum())
            extra = 0.0
            backward(part_loss)
            loss = loss + part_loss.detach()
            entropy_sum = entropy_sum + entropy_term.detach()
        max_norm = self.config.max_grad_norm if self.config.max_grad_norm > 0 else None
        grad_norm = guarded_step(self.adam, self.params, loss=loss, max_norm=max_norm,
                                 what="reinforce")
        return {
            "rl/loss": float(loss.detach()),
            "rl/return": float(masked_mean(G, mask)),
            "rl/advantage": float(masked_mean(advantage, mask)),
            "rl/baseline": float(masked_mean(b, mask)),
            "rl/entropy": float(entropy_sum / mask.sum().clamp(min=1.0)),
            "rl/grad_norm": float(grad_norm),
            "rl/lr": self._advance_schedule(),
        }

    def _advance_schedule(self) -> float:
        """The learning rate this update used; steps the schedule for the next."""
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        return lr

    def _teacher_forcing(self, ctx: StepContext, baseline: float) -> tuple[Tensor, float]:
        """(Σ_t (R_real − b) log π(real_t), number of real tokens) for k random real texts."""
        real = ctx.task.generator_train()
        pick = ctx.rng.choice(len(real), min(self.config.teacher_forcing, len(real)), replace=False)
        samples = [real[int(i)] for i in pick]
        nll = ctx.generator.nll(samples)  # totals [k] summed over tokens, with token counts
        log_likelihood = -nll.total
        tokens = float(nll.tokens.sum())
        advantage = self.config.teacher_forcing_reward - baseline
        return advantage * log_likelihood.sum(), tokens

    def state_dict(self) -> dict[str, Any]:
        return {"adam": self.adam.state_dict(), "moving_baseline": self.moving_baseline,
                "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.adam.load_state_dict(state["adam"])
        self.moving_baseline = state.get("moving_baseline")
        load_scheduler(self.scheduler, state.get("scheduler"))


def build_reinforce(config: ReinforceConfig, ctx: BuildContext) -> Reinforce:
    if ctx.generator is None:
        raise ConfigError("optimizer reinforce needs a generator in the recipe")
    return Reinforce(config, ctx.generator.parameters(), total_steps=rl_total_steps(ctx))

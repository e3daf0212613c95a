"""The Monte-Carlo rollout reward of SeqGAN (Yu et al., 2017, "SeqGAN", section 4).

For a sequence y_1..y_T and a sequence-level reward D (by default the classifier's P(real)):

    Q(y_1:t) = 1/N Σ_n D(y_1:t ⊕ Y^n_{t+1:T}),   Y^n ~ G_β(· | y_1:t)     for t < T
    Q(y_1:T) = D(y_1:T)

G_β is a rollout policy that lags the generator: after every generator update
β ← r·β + (1 − r)·θ with update rate r = 0.8 (the reference code's ``update_rate``).

Batched: all N × (T − 1) continuations of a batch are ONE ``generator.complete`` call with
M = B·N·(T−1) rows, and one call of the wrapped reward; no Python loop over rollouts or
positions (see ``benchmarks/mc_rollout.py``). The generator must therefore have the
:class:`advx.components.SupportsCompletion` capability, checked when the reward is built.

Output, ``per_token`` (key ``per_token``):
* ``telescoped`` (default): r_t = Q_t − Q_{t+1} (and r_T = Q_T), so the reward-to-go
  Σ_{t'≥t} r_t' is exactly Q_t, SeqGAN's weight on ∇log G(y_t | y_<t), for any optimizer
  that uses returns (``reinforce``, PPO with γ = λ = 1). ``Rewards.total`` is Q_1.
* ``q``: r_t = Q_t itself, for an optimizer that weights each token by its own reward
  (``reinforce`` with ``returns: immediate``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from advx.choices import Choice
from advx.components import BuildContext, Generator, StepContext, SupportsCompletion, require
from advx.errors import ConfigError
from advx.rollout import Rewards, Rollout, masked_mean
from torch import Tensor

SequenceReward = Callable[[Rollout, StepContext], Tensor]


class PerToken(Choice):
    """``reward.per_token`` of ``mc_rollout``."""

    telescoped = "telescoped"
    q = "q"


@dataclass
class MCRolloutConfig:
    """The ``reward:`` block for ``name: mc_rollout``.

    Attributes:
        rollouts: N, Monte-Carlo continuations per prefix (SeqGAN: 16).
        update_rate: r in β ← r·β + (1 − r)·θ (0.8; 0 = no lag, 1 = frozen after the first call).
        per_token: ``telescoped`` (reward-to-go equals Q_t) or ``q`` (per-token reward is Q_t).
        wrapped: a registered reward to wrap, as a recipe block (``{name: ..., ...}``); its
            ``Rewards.total`` is D. Empty: D = the classifier's probability of ``real_class``.
        real_class: the classifier column read as "real" (1).
        max_rows: continuations per ``complete`` call; 0 = all M rows in one call (set it to
            bound memory on long sequences or large vocabularies).
    """

    rollouts: int = 16
    update_rate: float = 0.8
    per_token: PerToken = PerToken.telescoped
    wrapped: dict[str, Any] = field(default_factory=dict)
    real_class: int = 1
    max_rows: int = 0


class MCRolloutReward:
    """The ``mc_rollout`` reward; keeps the lagging rollout policy as its state."""

    def __init__(self, config: MCRolloutConfig, sequence_reward: SequenceReward | None = None):
        if config.rollouts < 1:
            raise ConfigError(f"reward.rollouts must be >= 1, got {config.rollouts}")
        if not 0.0 <= config.update_rate <= 1.0:
            raise ConfigError(f"reward.update_rate must be in [0, 1], got {config.update_rate}")
        self.config = config
        self.sequence_reward = sequence_reward or self._classifier_reward
        self.policy: Generator | None = None
        self._pending_state: Mapping[str, Any] | None = None
        self.last_q: Tensor | None = None  # [B, T] of the last call, for inspection and tests

    def _classifier_reward(self, rollout: Rollout, ctx: StepContext) -> Tensor:
        if ctx.classifier is None:
            raise ConfigError(
                "reward mc_rollout wraps the classifier's P(real) by default, but the recipe "
                "has no classifier; add one or set reward.wrapped"
            )
        return ctx.classifier.predict_proba(rollout.samples())[:, self.config.real_class]

    # ----------------------------------------------------------------- rollout policy
    @torch.no_grad()
    def sync_policy(self, generator: Generator) -> Generator:
        """First call: β = θ (a copy). Later calls: β ← r·β + (1 − r)·θ."""
        if self.policy is None:
            self.policy = copy.deepcopy(generator)
            for param in self.policy.parameters():
                param.requires_grad_(False)
            if self._pending_state is not None:
                self.policy.load_state_dict(self._pending_state)
                self._pending_state = None
            return self.policy
        rate = self.config.update_rate
        for lagged, current in zip(self.policy.parameters(), generator.parameters(), strict=True):
            lagged.mul_(rate).add_(current.detach(), alpha=1.0 - rate)
        return self.policy

    # ----------------------------------------------------------------- the estimate
    @torch.no_grad()
    def q_values(self, rollout: Rollout, ctx: StepContext, policy: Generator) -> Tensor:
        """``Q [B, T]``: MC estimates for t < length, D(full sequence) at the last token."""
        mask = rollout.response_mask
        batch, width = mask.shape
        lengths = rollout.lengths
        # every (row, prefix length t) with 1 <= t < length, repeated N times
        prefix_grid = torch.arange(1, width, device=mask.device)[None, :].expand(batch, -1)
        row_idx, col_idx = (prefix_grid < lengths[:, None]).nonzero(as_tuple=True)
        n = self.config.rollouts
        rows, prefix = row_idx.repeat(n), (col_idx + 1).repeat(n)

        q = torch.zeros(batch, width, dtype=torch.float32, device=mask.device)
        if len(rows):
            values = self._complete_and_score(rollout, rows, prefix, ctx, policy)
            q.index_put_((rows, prefix - 1), values.float() / n, accumulate=True)
        full = self.sequence_reward(rollout, ctx).float().to(q.device)
        q[torch.arange(batch, device=q.device), rollout.last_index] = full
        return q * mask

    def _complete_and_score(
        self, rollout: Rollout, rows: Tensor, prefix: Tensor, ctx: StepContext, policy: Generator
    ) -> Tensor:
        size = self.config.max_rows or len(rows)
        scores = []
        for start in range(0, len(rows), size):
            part = slice(start, start + size)
            done = policy.complete(rollout, rows[part], prefix[part])
            scores.append(self.sequence_reward(done, ctx).float().to(rows.device))
        return torch.cat(scores)

    def __call__(self, rollout: Rollout, ctx: StepContext) -> Rewards:
        policy = self.sync_policy(ctx.generator)
        q = self.q_values(rollout, ctx, policy)
        self.last_q = q
        mask = rollout.response_mask.to(q)
        if self.config.per_token == "q":
            per_token = q
        else:
            following = torch.cat([q[:, 1:], torch.zeros_like(q[:, :1])], dim=1)
            per_token = (q - following) * mask
        full = q[torch.arange(q.shape[0], device=q.device), rollout.last_index]
        return Rewards(
            per_token=per_token,
            terms={"disc_prob": full, "mc_q_mean": masked_mean(q, mask, dim=1)},
        )

    # ----------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {"policy": None if self.policy is None else self.policy.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores the lagged policy; applied when the first call copies the generator."""
        self.policy = None
        self._pending_state = state.get("policy")


def _wrapped_reward(block: Mapping[str, Any], ctx: BuildContext) -> SequenceReward:
    """Build the registered reward named in ``wrapped`` (through the build context, so from
    the registry the recipe was validated against) and read its ``Rewards.total``."""
    inner = ctx.build("reward", block, path="reward.wrapped")
    return lambda rollout, step_ctx: inner(rollout, step_ctx).total


def build_mc_rollout(config: MCRolloutConfig, ctx: BuildContext) -> MCRolloutReward:
    if ctx.generator is not None:
        require(ctx.generator, SupportsCompletion, role=ctx.describe("generator"),
                needed_by="reward 'mc_rollout' (it samples continuations of every prefix)")
    wrapped = _wrapped_reward(config.wrapped, ctx) if config.wrapped else None
    return MCRolloutReward(config, wrapped)

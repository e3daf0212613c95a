"""The cold-start paper's structured reward (ACL 2025), per token.

    t < T:   R(t) = −β · KL_t(π_θ ‖ π_FT)
    t = T:   R(T) = α · L_cls − (1 − α) · log P_gen − β · KL_T

T is each row's last generated token (EOS, or the last token of a truncated response).

* KL_t is the per-token estimator ``log π_θ(a_t|s_t) − log π_FT(a_t|s_t)`` of the sampled token
  (the "k1" estimator PPO-for-LMs uses: unbiased for the sequence KL, its per-token value may
  be negative). Both log-probs come from the rollout (behaviour policy and frozen reference);
  nothing is recomputed.
* L_cls = ``ctx.classifier.loss(rollout.samples())``: the current classifier's cross-entropy
  against each prompt's label. Large when the classifier gets the query wrong: the adversarial
  signal.
* log P_gen = Σ_t log π_θ(a_t|s_t) over the response (``length_normalize: true`` uses the
  per-token mean instead). Implemented exactly as the paper writes it: with α < 1 the term
  −(1 − α)·log P_gen is POSITIVE and grows as the query gets LESS likely, so it rewards unusual,
  low-probability queries (an exploration/novelty bonus), not fluent ones. With the summed form it
  also rewards longer responses (every extra token adds −log p > 0); ``length_normalize: true``
  removes that length incentive.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from advx.components import StepContext
from advx.errors import ConfigError
from advx.rollout import Rewards, Rollout

__all__ = ["ClsLossConfig", "ClsLossReward", "build_cls_loss"]


@dataclass
class ClsLossConfig:
    """The ``reward:`` block for ``name: cls_loss``.

    Attributes:
        alpha: weight α of L_cls; (1 − α) weighs −log P_gen.
        beta: weight β of the per-token KL penalty to the frozen SFT policy π_FT.
        length_normalize: use the mean token log-prob for log P_gen instead of the sum
            (default false: the paper's sequence log-probability).
    """

    alpha: float = 0.7
    beta: float = 0.05
    length_normalize: bool = False


class ClsLossReward:
    """``(rollout, ctx) -> Rewards`` with terms ``cls_loss``, ``log_p_gen``, ``kl``, ``total``."""

    def __init__(self, config: ClsLossConfig) -> None:
        if not 0.0 <= config.alpha <= 1.0:
            raise ConfigError(f"reward.alpha must lie in [0, 1], got {config.alpha}.")
        if config.beta < 0:
            raise ConfigError(f"reward.beta must be >= 0, got {config.beta}.")
        self.config = config

    def __call__(self, rollout: Rollout, ctx: StepContext) -> Rewards:
        alpha, beta = self.config.alpha, self.config.beta
        mask = rollout.response_mask.to(torch.float32)
        # where(), not a product: a generator may leave -inf at padding, and -inf · 0 is NaN
        logprobs = _masked(rollout.logprobs, mask)

        # KL_t at every generated token (padding stays 0).
        kl_t = torch.zeros_like(logprobs)
        if beta > 0:
            if rollout.ref_logprobs is None:
                raise ConfigError(
                    "reward cls_loss with beta > 0 needs the reference log-probs: set "
                    "loop.use_reference: true (or reward.beta: 0)."
                )
            kl_t = logprobs - _masked(rollout.ref_logprobs, mask)
        per_token = -beta * kl_t

        # Sequence terms, paid at EOS only.
        if ctx.classifier is None:
            raise ConfigError("reward cls_loss needs a classifier: add a `classifier:` block.")
        cls_loss = ctx.classifier.loss(rollout.samples()).float().to(per_token.device)
        log_p_gen = logprobs.sum(-1)
        if self.config.length_normalize:
            log_p_gen = log_p_gen / mask.sum(-1).clamp(min=1.0)
        at_eos = alpha * cls_loss - (1.0 - alpha) * log_p_gen
        rows = torch.arange(rollout.batch_size, device=per_token.device)
        per_token[rows, rollout.last_index] += at_eos

        return Rewards(
            per_token=per_token,
            terms={
                "cls_loss": cls_loss,
                "log_p_gen": log_p_gen,
                "kl": kl_t.sum(-1),
                "total": per_token.sum(-1),
            },
        )


def _masked(logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``logprobs`` as float32 on generated tokens, exactly 0 at padding."""
    return torch.where(mask.bool(), logprobs.float(), torch.zeros((), device=logprobs.device))


def build_cls_loss(config: ClsLossConfig, ctx: object) -> ClsLossReward:
    return ClsLossReward(config)

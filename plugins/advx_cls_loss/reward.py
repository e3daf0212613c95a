"""The cold-start paper's structured reward (ACL 2025), per token.

    t < T:   R(t) = −β · KL_t(π_θ ‖ π_FT)
    t = T:   R(T) = α · L_cls + G + γ · log p_FT(y | q, x) − β · KL_T

T is each row's last generated token (EOS, or the last token of a truncated response). G is the
generation-probability term, whose form is one key (``gen_term``):

    novelty (the paper's literal formula):  G = −(1 − α) · log P_gen
    fluency:                                G = +(1 − α) · log P_gen
    none:                                   G = 0

then, in this order, optionally per token (``gen_term_per_token``: log P_gen is the mean token
log-prob instead of the sum) and capped (``gen_term_cap`` c > 0: G is clamped to [−c, c]).

* KL_t is the per-token estimator ``log π_θ(a_t|s_t) − log π_FT(a_t|s_t)`` of the sampled token
  (the "k1" estimator PPO-for-LMs uses: unbiased for the sequence KL, its per-token value may
  be negative). Both log-probs come from the rollout (behaviour policy and frozen reference);
  nothing is recomputed.
* L_cls = ``ctx.classifier.loss(rollout.samples())``: the current classifier's cross-entropy
  against each prompt's label. Large when the classifier gets the query wrong: the adversarial
  signal.
* log P_gen = Σ_t log π_θ(a_t|s_t) over the response. Why the form is a key: as the paper
  writes it (``novelty``), with α < 1 the term −(1 − α)·log P_gen is POSITIVE and grows as the
  query gets LESS likely, so it pays for unusual, low-probability queries (an exploration /
  novelty bonus), not fluent ones; summed over tokens it also pays for length (every extra
  token adds −log p > 0). On CrowdFlower (docs/results/cold_start.md) this term was 98 % of the
  reward and PPO learned "longer, less likely text". ``fluency`` flips the sign (likely text is
  preferred), ``gen_term_per_token`` removes the length incentive, ``gen_term_cap`` bounds the
  term so L_cls can compete; ``none`` keeps L_cls and the KL penalty only.

* log p_FT(y | q, x) (``label_consistency`` γ > 0; not in the paper, default 0): the frozen
  SFT policy's own posterior of the requested label y for the query q, by Bayes over its
  label-conditioned prompts (:func:`advx.label_specific.label_posterior`). L_cls alone pays
  for any query the classifier gets wrong, including one that simply carries the other label
  (on CrowdFlower PPO learned to answer "relevant" prompts with off-topic queries: agreement
  of the relevant side 0.09, docs/results/cold_start.md); this term (≤ 0) costs a query in
  proportion to how much it reads as the other label to a model that never saw the
  classifier, so the adversarial signal must come from queries that keep their label.

Every part is logged as its own term: ``cls_loss`` (L_cls), ``cls_term`` (α·L_cls),
``log_p_gen`` (the log P_gen that enters G: sum, or mean per token), ``gen_term`` (G as paid,
after sign, weight, normalisation and cap), ``gen_term_capped`` (1 where the cap bit), ``kl``
(Σ_t KL_t), with γ > 0 ``label_log_posterior`` and ``consistency_term`` (γ · it), and
``total``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
from advx.components import RequestsLabels, StepContext, require
from advx.errors import ConfigError
from advx.label_specific import label_posterior
from advx.rollout import Rewards, Rollout

__all__ = ["ClsLossConfig", "ClsLossReward", "GenTerm", "build_cls_loss"]


class GenTerm(str, Enum):
    """``reward.gen_term``: the sign/form of the log P_gen term G."""

    novelty = "novelty"  # the paper's literal −(1 − α)·log P_gen: pays for unlikely text
    fluency = "fluency"  # +(1 − α)·log P_gen: pays for likely text
    none = "none"  # no log P_gen term

    def __str__(self) -> str:
        return str(self.value)


@dataclass
class ClsLossConfig:
    """The ``reward:`` block for ``name: cls_loss``.

    Attributes:
        alpha: weight α of L_cls; (1 − α) weighs the log P_gen term.
        beta: weight β of the per-token KL penalty to the frozen SFT policy π_FT.
        gen_term: form of the log P_gen term: ``novelty`` (default, the paper's literal
            −(1 − α)·log P_gen), ``fluency`` (+(1 − α)·log P_gen) or ``none``.
        gen_term_per_token: log P_gen as the mean token log-prob instead of the paper's sum.
        gen_term_cap: clamp the term to [−cap, cap] (0 = no cap).
        label_consistency: weight γ ≥ 0 of log p_FT(y | q, x), the frozen SFT policy's
            posterior of the requested label (0: off, the paper). Needs the reference policy
            (``loop.use_reference: true``) and a task whose prompts request a label.
        length_normalize: the former name of ``gen_term_per_token`` (kept so older recipes
            and sweeps run; true sets ``gen_term_per_token``).
    """

    alpha: float = 0.7
    beta: float = 0.05
    gen_term: GenTerm = GenTerm.novelty
    gen_term_per_token: bool = False
    gen_term_cap: float = 0.0
    label_consistency: float = 0.0
    length_normalize: bool = False

    def __post_init__(self) -> None:
        # Checked here, not in the reward, so `advx sweep`/`compare` pre-checks every cell.
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"reward.alpha must lie in [0, 1], got {self.alpha}.")
        if self.beta < 0:
            raise ConfigError(f"reward.beta must be >= 0, got {self.beta}.")
        try:
            self.gen_term = GenTerm(str(getattr(self.gen_term, "value", self.gen_term)))
        except ValueError:
            raise ConfigError(
                f"reward.gen_term: {self.gen_term!r} is not one of "
                f"{', '.join(g.value for g in GenTerm)} (novelty is the paper's literal form)."
            ) from None
        if not self.gen_term_cap >= 0.0:  # also rejects NaN
            raise ConfigError(
                f"reward.gen_term_cap must be >= 0 (0 = no cap), got {self.gen_term_cap}."
            )
        if not self.label_consistency >= 0.0:  # also rejects NaN
            raise ConfigError(f"reward.label_consistency must be >= 0 (0 = off), got "
                              f"{self.label_consistency}.")
        if self.length_normalize:
            self.gen_term_per_token = True


class ClsLossReward:
    """``(rollout, ctx) -> Rewards`` with the terms listed in the module docstring."""

    def __init__(self, config: ClsLossConfig) -> None:
        config.__post_init__()  # a config built by hand and then edited is checked again
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
        if self.config.gen_term_per_token:
            log_p_gen = log_p_gen / mask.sum(-1).clamp(min=1.0)
        gen_term, capped = self._gen_term(log_p_gen, alpha)
        cls_term = alpha * cls_loss
        consistency = self._consistency(rollout, ctx)
        rows = torch.arange(rollout.batch_size, device=per_token.device)
        per_token[rows, rollout.last_index] += cls_term + gen_term
        if consistency:
            per_token[rows, rollout.last_index] += consistency["consistency_term"].to(
                per_token.device)

        return Rewards(
            per_token=per_token,
            terms={
                **consistency,
                "cls_loss": cls_loss,
                "cls_term": cls_term,
                "log_p_gen": log_p_gen,
                "gen_term": gen_term,
                "gen_term_capped": capped,
                "kl": kl_t.sum(-1),
                "total": per_token.sum(-1),
            },
        )

    def _consistency(self, rollout: Rollout, ctx: StepContext) -> dict[str, torch.Tensor]:
        """γ · log p_FT(y | q, x) and its log-posterior, or nothing when γ = 0."""
        gamma = self.config.label_consistency
        if not gamma:
            return {}
        if ctx.reference is None:
            raise ConfigError("reward.label_consistency > 0 scores queries with the frozen SFT "
                              "policy: set loop.use_reference: true (or "
                              "reward.label_consistency: 0).")
        require(ctx.task, RequestsLabels, role=f"task {type(ctx.task).__name__}",
                needed_by="reward.label_consistency > 0 (set it to 0 for this task)")
        log_posterior = label_posterior(ctx.reference, ctx.task, rollout)
        return {"label_log_posterior": log_posterior, "consistency_term": gamma * log_posterior}

    def _gen_term(self, log_p_gen: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
        """G per row (sign and weight of ``gen_term``, then the cap) and where the cap bit."""
        sign = {GenTerm.novelty: -1.0, GenTerm.fluency: 1.0, GenTerm.none: 0.0}
        term = sign[self.config.gen_term] * (1.0 - alpha) * log_p_gen
        cap = self.config.gen_term_cap
        if cap <= 0:
            return term, torch.zeros_like(term)
        return term.clamp(-cap, cap), (term.abs() > cap).to(term.dtype)


def _masked(logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``logprobs`` as float32 on generated tokens, exactly 0 at padding."""
    return torch.where(mask.bool(), logprobs.float(), torch.zeros((), device=logprobs.device))


def build_cls_loss(config: ClsLossConfig, ctx: object) -> ClsLossReward:
    return ClsLossReward(config)

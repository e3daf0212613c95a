"""The data that flows between components.

Shapes are part of the contract. ``B`` is the number of sampled sequences in a batch
(prompts × samples per prompt), ``T`` the padded response length, ``P`` the padded prompt
length. Responses are right-padded; ``response_mask`` is 1 on every generated token up to
and including EOS and 0 on padding. Tensors live on the generator's device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "Prompt",
    "Rewards",
    "Rollout",
    "Sample",
    "SequenceNLL",
    "left_pad",
    "mask_through_eos",
    "masked_mean",
    "right_pad",
    "shift_right",
]


@dataclass(frozen=True)
class Prompt:
    """What a generator conditions on.

    ``text`` is the rendered prompt ("" for unconditional generation, as in SeqGAN).
    ``meta`` carries everything a task, reward or optimizer may need about this prompt:
    the relevance label, the product id and fields, the user's history, the ground-truth
    target (AdaGRPO's NLL anchor), ... Keys are the task's to define and document.
    """

    text: str
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample:
    """One text with optional context and label.

    The single record type for supervised data: an SFT pair is ``Sample(text=target,
    prompt=...)``; a classifier example is ``Sample(text=query, prompt=..., label=1)``
    (classifiers may read product fields from ``prompt.meta``); a generated output is a
    ``Sample`` made from a :class:`Rollout` row.
    """

    text: str
    prompt: Prompt | None = None
    label: int | None = None

    def with_label(self, label: int) -> Sample:
        return replace(self, label=label)


@dataclass
class SequenceNLL:
    """Teacher-forced negative log-likelihood of N target texts, with token counts.

    ``total``: ``[N]`` NLL summed over each target's tokens (EOS included), with grad.
    ``tokens``: ``[N]`` how many tokens each sum covers, in the generator's own tokenizer,
    so per-token figures never guess from ``len(text.split())`` (wrong for sub-words).
    """

    total: Tensor
    tokens: Tensor

    def per_token(self) -> Tensor:
        """``[N]`` mean NLL per token of each target."""
        return self.total / self.tokens.clamp(min=1).to(self.total.dtype)


@dataclass
class Rollout:
    """A batch of sampled responses and everything the update needs about them.

    Filled by ``Generator.sample`` (ids, masks, behaviour log-probs, values when the
    generator has a value head); ``ref_logprobs`` is filled by the loop from the frozen
    reference policy. Nothing here carries a gradient.

    Attributes:
        prompts: the ``B`` prompts, one per row (a prompt sampled ``n`` times appears ``n`` times).
        prompt_ids: ``[B, P]`` token ids of the prompts (right-padded; generator-specific).
        prompt_mask: ``[B, P]`` 1 on prompt tokens.
        response_ids: ``[B, T]`` sampled token ids, right-padded with the pad id.
        response_mask: ``[B, T]`` 1 on generated tokens (EOS included), 0 on padding.
        logprobs: ``[B, T]`` log π_old(a_t | s_t) of the sampled tokens under the sampling policy.
        ref_logprobs: ``[B, T]`` log π_ref(a_t | s_t) under the frozen reference, or None.
        values: ``[B, T]`` value-head estimates V(s_t), or None.
        group_ids: ``[B]`` int64, rows sampled from the same prompt share an id (GRPO groups).
        texts: the ``B`` decoded responses (special tokens stripped).
    """

    prompts: list[Prompt]
    prompt_ids: Tensor
    prompt_mask: Tensor
    response_ids: Tensor
    response_mask: Tensor
    logprobs: Tensor
    texts: list[str]
    group_ids: Tensor
    ref_logprobs: Tensor | None = None
    values: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.response_ids.shape[0]

    @property
    def lengths(self) -> Tensor:
        """``[B]`` number of generated tokens per row (EOS included)."""
        return self.response_mask.sum(-1).long()

    @property
    def last_index(self) -> Tensor:
        """``[B]`` position of the final generated token (EOS, or the last token if truncated)."""
        return (self.lengths - 1).clamp(min=0)

    def samples(self) -> list[Sample]:
        """The responses as :class:`Sample` records (label taken from ``prompt.meta['label']``)."""
        return [
            Sample(text=text, prompt=prompt, label=prompt.meta.get("label"))
            for text, prompt in zip(self.texts, self.prompts, strict=True)
        ]

    def select(self, rows: Tensor | Sequence[int]) -> Rollout:
        """A sub-batch (for minibatches); tensors are indexed, lists gathered."""
        index = torch.as_tensor(rows, dtype=torch.long, device=self.response_ids.device)
        picked = index.tolist()

        def take(tensor: Tensor | None) -> Tensor | None:
            return None if tensor is None else tensor[index]

        return Rollout(
            prompts=[self.prompts[i] for i in picked],
            prompt_ids=self.prompt_ids[index],
            prompt_mask=self.prompt_mask[index],
            response_ids=self.response_ids[index],
            response_mask=self.response_mask[index],
            logprobs=self.logprobs[index],
            texts=[self.texts[i] for i in picked],
            group_ids=self.group_ids[index],
            ref_logprobs=take(self.ref_logprobs),
            values=take(self.values),
        )


@dataclass
class Rewards:
    """The reward of a rollout, per token, with every named term kept for logging.

    Attributes:
        per_token: ``[B, T]`` reward received after emitting token t (0 on padding).
            Sequence-level rewards are placed on the last generated token.
        terms: named per-example scalars ``[B]`` (e.g. ``cls_loss``, ``log_p_gen``, ``kl``,
            ``disc_prob``), each logged beside the total; their weighted combination is
            already inside ``per_token``.
    """

    per_token: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)

    @property
    def total(self) -> Tensor:
        """``[B]`` sequence return: the sum of per-token rewards."""
        return self.per_token.sum(-1)

    def summary(self) -> dict[str, float]:
        """Batch means of the total and of every term, for the metrics log."""
        out = {"reward/total": float(self.total.mean())}
        for name, value in self.terms.items():
            out[f"reward/{name}"] = float(value.float().mean())
        return out

    @classmethod
    def at_end(cls, sequence_reward: Tensor, rollout: Rollout, **terms: Tensor) -> Rewards:
        """Rewards that pay ``sequence_reward`` ``[B]`` on each row's last generated token."""
        per_token = torch.zeros_like(rollout.logprobs, dtype=torch.float32)
        rows = torch.arange(rollout.batch_size, device=per_token.device)
        per_token[rows, rollout.last_index] = sequence_reward.to(per_token)
        return cls(per_token=per_token, terms=dict(terms))


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``values`` over positions where ``mask`` is 1 (all dims, or along ``dim``)."""
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1.0)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


# --------------------------------------------------------------------- sequence helpers
# The layout above (right-padded responses, a mask through the first EOS) is defined here, so
# every generator builds it with the same few functions instead of its own copy.


def mask_through_eos(ids: Tensor, eos_id: int | None) -> Tensor:
    """``[B, T]`` int64: 1 up to and including each row's first ``eos_id``, 0 after it.

    A row without EOS (truncated at the length limit) is all ones; ``eos_id=None`` (a
    vocabulary without EOS, e.g. SeqGAN's fixed-length oracle ids) gives all ones.
    """
    if eos_id is None:
        return torch.ones_like(ids, dtype=torch.long)
    is_eos = (ids == eos_id).long()
    eos_before = is_eos.cumsum(-1) - is_eos  # EOS tokens strictly before position t
    return (eos_before == 0).long()


def _pad(rows: Sequence[Sequence[int]], pad_id: int, left: bool) -> tuple[Tensor, Tensor]:
    width = max(1, max((len(r) for r in rows), default=0))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if not len(row):
            continue
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.as_tensor(list(row), dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def right_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """``ids, mask [N, W]`` (CPU, int64) of token-id lists padded on the right with
    ``pad_id``; ``W`` is the longest row (at least 1, so an empty row still has a column)."""
    return _pad(rows, pad_id, left=False)


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """As :func:`right_pad`, padded on the left (decoder-only prompts end in one column)."""
    return _pad(rows, pad_id, left=True)


def shift_right(ids: Tensor, start_id: int) -> Tensor:
    """Teacher-forcing inputs ``[B, T]``: ``start_id``, then ``ids`` without its last column."""
    start = torch.full_like(ids[:, :1], start_id)
    return torch.cat([start, ids[:, :-1]], dim=1)

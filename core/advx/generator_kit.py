"""What every generator shares besides the sequence layout: the SFT loop and the reference.

The three built-in generators (``seq2seq``, ``causal``, ``lstm``) differ in how they score a
batch, not in how they train on one, so the policy lives here once:

* :class:`SFTLoop`: ``epochs`` passes of shuffled minibatches (shuffled with the global torch
  generator, which the loop seeds and checkpoints, so a resumed run draws the same orders),
  token-mean cross-entropy, one optimizer kept across calls (and in the generator's
  ``state_dict``), every step through :func:`advx.numerics.guarded_step` clipped to the
  generator's ``max_grad_norm`` (0 = no clipping), empty input a :class:`DataError`, and the
  same returned metrics: ``sft/loss`` (token-mean loss of the last epoch), ``sft/examples``,
  ``sft/epochs``. In a data-parallel run (:mod:`advx.distributed`) every rank draws the same
  minibatches and differentiates its share of each; the update is the whole minibatch's.
  With ``length_bucketed`` the minibatches hold examples of near-equal length (the bucket
  iterator of :func:`epoch_batches`), so padding to a batch's longest row costs less.
* :func:`frozen_reference`: π_ref, a frozen deep copy of the weights taken the first time a
  generator is asked for its reference. Later training never moves it; asking again returns
  the same object, and a reference is its own reference.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from advx.accel import backward
from advx.distributed import (
    broadcast_object,
    is_distributed,
    rank_seed,
    same_on_every_rank,
    shard_bounds,
    share_scale,
    sum_across,
)
from advx.errors import ConfigError, DataError
from advx.lora import AdapterDisabled, fold_adapter, is_peft_model
from advx.microbatch import check_accumulation, micro_batches
from advx.numerics import guarded_step
from advx.rollout import Sample
from advx.schedules import check_schedule, fit_scheduler

__all__ = ["ModelState", "SFTLoop", "check_minimums", "epoch_batches", "frozen_reference",
           "sample_length"]

G = TypeVar("G")

#: ``batch -> (summed token NLL over the batch, number of target tokens)``, with grad.
BatchLoss = Callable[[Sequence[Sample]], tuple[Tensor, int | Tensor]]

#: Batches per chunk of the bucket iterator (torchtext's ``BucketIterator`` pool of 100):
#: the sort reaches this far, so batches are near-equal in length while the batch order and
#: each chunk's membership stay random.
BUCKET_CHUNK_BATCHES = 100


def sample_length(sample: Sample) -> tuple[int, int]:
    """The sort key of the bucket iterator: whitespace tokens of prompt + target (exact for
    the ``word`` tokenizer: item ids, semantic-id codes), then characters (a BPE proxy).
    The loop cannot tokenize (it only sees samples), and an order proxy is all it needs."""
    text = f"{sample.prompt.text if sample.prompt is not None else ''} {sample.text}"
    return len(text.split()), len(text)


def epoch_batches(n: int, batch_size: int, *, lengths: Sequence[Any] | None = None,
                  chunk_batches: int = BUCKET_CHUNK_BATCHES) -> list[list[int]]:
    """One epoch's minibatches as index lists over ``n`` examples, from the global torch RNG.

    ``lengths`` None: one ``randperm`` cut into consecutive batches (the uniform order).
    Otherwise the standard *bucket iterator* (torchtext's ``BucketIterator``, fairseq's
    length-sorted batches): shuffle, sort each chunk of ``chunk_batches`` batches by length
    (a stable sort, so ties keep the shuffled order), cut it into batches, then shuffle the
    batch order. Every example is still in exactly one batch; only the last batch can be
    short, as before. Hand-written (a few lines): torchtext's ``BucketIterator`` is retired,
    and transformers' ``get_length_grouped_indices`` (the ``Trainer``'s ``group_by_length``)
    keeps each mega-batch's batches in descending length order with the longest first (to hit
    an OOM early), a length curriculum inside every mega-batch rather than a shuffled order.
    """
    order = torch.randperm(n).tolist()
    if lengths is None:
        return [order[start : start + batch_size] for start in range(0, n, batch_size)]
    chunk = batch_size * chunk_batches  # a multiple of batch_size: full batches inside
    batches: list[list[int]] = []
    for lo in range(0, n, chunk):
        part = sorted(order[lo : lo + chunk], key=lambda i: lengths[i])
        batches += [part[start : start + batch_size] for start in range(0, len(part), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches)).tolist()]


class SFTLoop:
    """Supervised fine-tuning with a persistent optimizer (see the module docstring).

    ``make_optimizer`` builds the optimizer over ``model``'s trainable parameters on the
    first call of :meth:`run` (or on :meth:`load_from`), so a generator that never
    trains never allocates optimizer state. The loop holds the module itself, not a closure
    over the generator, so ``copy.deepcopy(generator)`` (the MC rollout's lagging policy)
    gives a copy whose loop trains the copied weights.
    """

    def __init__(
        self,
        name: str,
        model: nn.Module,
        make_optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer],
        *,
        epochs: int,
        batch_size: int,
        max_grad_norm: float,
        schedule: Any = None,
        grad_accum_steps: int = 1,
        length_bucketed: bool = False,
    ) -> None:
        self.name = name
        self.model = model
        self._make_optimizer = make_optimizer
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_grad_norm = max_grad_norm
        self.optimizer: torch.optim.Optimizer | None = None
        self.schedule = schedule
        self.grad_accum_steps = grad_accum_steps
        if not isinstance(length_bucketed, bool):
            raise ConfigError(f"generator.length_bucketed must be true or false, "
                              f"got {length_bucketed!r}")
        self.length_bucketed = length_bucketed
        """Batches of near-equal length (:func:`epoch_batches`); False: uniform order."""
        check_accumulation(self, "generator")
        if schedule is not None:
            check_schedule(schedule, "generator")  # at build time, before anything trains
        """A config with :class:`advx.schedules.ScheduleConfig` keys (None: constant lr)."""

    @classmethod
    def from_config(
        cls, name: str, model: nn.Module, config: Any,
        optimizer: Callable[..., torch.optim.Optimizer] = torch.optim.AdamW,
    ) -> SFTLoop:
        """The loop from a generator config's ``lr``, ``weight_decay`` (0 when absent),
        ``epochs``, ``batch_size`` and ``max_grad_norm`` keys, its learning-rate schedule
        keys when it has them (:class:`advx.schedules.ScheduleConfig`; one schedule per
        :meth:`run` call), ``grad_accum_steps`` and ``length_bucketed`` (absent: 1, False)."""
        lr, weight_decay = config.lr, getattr(config, "weight_decay", 0.0)
        return cls(name, model, lambda params: optimizer(params, lr=lr, weight_decay=weight_decay),
                   epochs=config.epochs, batch_size=config.batch_size,
                   max_grad_norm=config.max_grad_norm,
                   schedule=config if hasattr(config, "lr_scheduler") else None,
                   grad_accum_steps=getattr(config, "grad_accum_steps", 1),
                   length_bucketed=getattr(config, "length_bucketed", False))

    def _params(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def _ensure_optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer is None:
            self.optimizer = self._make_optimizer(self._params())
        return self.optimizer

    def run(self, samples: Sequence[Sample], batch_loss: BatchLoss) -> dict[str, float]:
        """Train on ``samples``; ``batch_loss`` scores one minibatch (see :data:`BatchLoss`)."""
        if not samples:
            raise DataError(
                f"{self.name}.sft got no samples: the task's generator_train() is empty. "
                f"Check the task's data (or set loop.pretrain_generator=false)."
            )
        optimizer = self._ensure_optimizer()
        params = self._params()
        max_norm = self.max_grad_norm if self.max_grad_norm > 0 else None
        scheduler = None
        if self.schedule is not None:
            scheduler = fit_scheduler(optimizer, self.schedule, examples=len(samples),
                                      batch_size=self.batch_size, epochs=self.epochs,
                                      where="generator")
        # Data-parallel (advx.distributed): with the same samples on every rank (checked; a
        # rank-local set trains whole on each rank, as before), each rank differentiates its
        # share of every global minibatch and guarded_step averages the gradients.
        sharded = is_distributed() and same_on_every_rank("\n".join(
            f"{s.prompt.text if s.prompt is not None else ''}\t{s.text}" for s in samples))
        lengths = [sample_length(s) for s in samples] if self.length_bucketed else None
        loss_sum, tokens, step = 0.0, 0, 0
        for _ in range(self.epochs):
            loss_sum, tokens = 0.0, 0
            batches = epoch_batches(len(samples), self.batch_size, lengths=lengths)
            if sharded:  # the main process's batches: the same minibatches on every rank
                batches = broadcast_object(batches)
            for rows in batches:
                batch = [samples[i] for i in rows]
                optimizer.zero_grad(set_to_none=True)
                if sharded:
                    total, count, loss = self.sharded_backward(batch, batch_loss, params, step)
                    step += 1
                elif self.grad_accum_steps > 1:
                    total, count, loss = self._accumulate(batch, batch_loss, params)
                else:
                    total, count = batch_loss(batch)
                    count = int(count)
                    loss = total / max(count, 1)
                    backward(loss)
                guarded_step(optimizer, params, loss=loss, max_norm=max_norm,
                             what=f"{self.name} sft")
                if scheduler is not None:
                    scheduler.step()
                loss_sum += float(total.detach())
                tokens += count
        if sharded:  # the ranks' shares of the last epoch's summed NLL (tokens: global)
            loss_sum = sum_across([loss_sum])[0]
        return {
            "sft/loss": loss_sum / max(tokens, 1),
            "sft/examples": float(len(samples)),
            "sft/epochs": float(self.epochs),
        }

    def _accumulate(self, batch: Sequence[Sample], batch_loss: BatchLoss,
                    params: list[nn.Parameter]) -> tuple[Tensor, int, Tensor]:
        """Backward the summed NLL of each micro-batch of ``batch`` (activations of one at a
        time), then divide the gradients by the batch's token count: exactly the gradient of
        the batch's token-mean loss (:mod:`advx.microbatch`)."""
        total, count = self._backward_summed(batch, batch_loss)
        for p in params:
            if p.grad is not None:
                p.grad.div_(max(count, 1))
        return total, count, total / max(count, 1)

    def _backward_summed(self, batch: Sequence[Sample], batch_loss: BatchLoss
                         ) -> tuple[Tensor, int]:
        """Backward the *summed* NLL of ``batch`` in ``grad_accum_steps`` micro-batches (the
        activations of one at a time); returns the summed NLL (detached, CPU) and the token
        count, for the caller to scale the gradients to a mean."""
        total, count = torch.zeros(()), 0
        for rows in micro_batches(len(batch), self.grad_accum_steps):
            part_total, part_count = batch_loss([batch[i] for i in rows.tolist()])
            backward(part_total)
            total = total + part_total.detach().cpu()
            count += int(part_count)
        return total, count

    def sharded_backward(self, batch: Sequence[Sample], batch_loss: BatchLoss,
                         params: list[nn.Parameter], step: int = 0
                         ) -> tuple[Tensor, int, Tensor]:
        """Data-parallel: backward on this rank's contiguous share of the global minibatch
        ``batch`` (uneven or empty shares allowed; in ``grad_accum_steps`` micro-batches),
        leaving gradients whose average over the ranks — what :func:`guarded_step` takes —
        is the gradient of the whole minibatch's token-mean NLL. Returns the share's summed
        NLL, the *whole* minibatch's token count and the loss to check (its rank average is
        the minibatch's token-mean). Dropout draws from a per-rank seed
        (:func:`rank_seed` of ``step``, the call's step counter), so the global RNG stays the
        same on every rank, where a one-process SFT without dropout leaves it."""
        lo, hi = shard_bounds(len(batch))
        with rank_seed(step):
            total, count = self._backward_summed(batch[lo:hi], batch_loss)
        whole = int(sum_across([count])[0])  # the minibatch's tokens, over every share
        scale = share_scale(whole)
        for p in params:
            if p.grad is not None:
                p.grad.mul_(scale)
        return total, whole, total * scale

    def save_into(self, state: dict[str, Any]) -> dict[str, Any]:
        """Add the optimizer's state to a generator's ``state_dict`` (once it exists)."""
        if self.optimizer is not None:
            state["sft_optimizer"] = self.optimizer.state_dict()
        return state

    def load_from(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`save_into` wrote (absent in a checkpoint taken before SFT)."""
        if "sft_optimizer" in state:
            self._ensure_optimizer().load_state_dict(dict(state["sft_optimizer"]))


def check_minimums(block: str, config: Any, minimums: Mapping[str, float]) -> None:
    """Raise a :class:`ConfigError` naming ``block.key`` when ``config.key < minimum``.

    Factories call this at build time for sizes a library would reject only later, with a
    traceback (``batch_size=0`` in ``range``, ``max_new_tokens=0`` in ``generate``). A
    minimum of 0 with a float key means strictly positive (e.g. a learning rate).
    """
    for key, minimum in minimums.items():
        value = getattr(config, key)
        if isinstance(minimum, float) and minimum == 0.0:
            if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise ConfigError(f"{block}.{key} must be a positive number, got {value}")
        elif value < minimum:
            raise ConfigError(f"{block}.{key} must be ≥ {minimum}, got {value}")


def frozen_reference(generator: G, **replace: Any) -> G:
    """π_ref of ``generator``: a shallow copy whose ``model`` is a frozen deep copy.

    Config, tokenizer and vocabulary are shared (read-only); ``replace`` sets other
    attributes of the copy (e.g. ``value_head=None``: the reference only scores tokens). The
    copy has no SFT loop and is its own reference. Generators cache the result in
    ``_reference`` so it is taken once, when first asked for. With a LoRA model
    (:mod:`advx.lora`) the copy's ``model`` is the policy's own model with the adapter
    disabled: the adapter trained so far (SFT) is first folded into the base
    (:func:`advx.lora.fold_adapter`), so the adapter-off model is the policy as it is now,
    as the deep copy is without LoRA; nothing is copied.
    """
    ref = copy.copy(generator)
    model = generator.model  # type: ignore[attr-defined]
    if is_peft_model(model):  # LoRA: the base weights, adapter off; no second copy
        fold_adapter(model)
        ref.model = AdapterDisabled(model)  # type: ignore[attr-defined]
    else:
        ref.model = copy.deepcopy(model).eval().requires_grad_(False)  # type: ignore[attr-defined]
    ref._sft = None  # type: ignore[attr-defined]
    for name, value in replace.items():
        setattr(ref, name, value)
    ref._reference = ref  # type: ignore[attr-defined]
    return ref


class ModelState:
    """The state half of the Generator protocol for a generator whose weights are one
    ``self.model`` (``nn.Module``), trained by an optional ``self._sft`` (:class:`SFTLoop`),
    with π_ref cached in ``self._reference``: ``reference()``, ``parameters()``,
    ``state_dict()``, ``load_state_dict()``. A generator with more weights (the seq2seq
    value head) writes its own."""

    model: nn.Module
    _sft: SFTLoop | None
    _reference: Any

    def reference(self) -> Any:
        """π_ref: see :func:`frozen_reference`."""
        if self._reference is None:
            self._reference = frozen_reference(self)
        return self._reference

    def parameters(self) -> Any:
        return self.model.parameters()

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"model": self.model.state_dict()}
        return state if self._sft is None else self._sft.save_into(state)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if self._sft is not None:
            self._sft.load_from(state)

"""Classifier ``ranker``: a SASRec-style sequential scorer, the "production ranker".

score(history, item) = ⟨h(history), e(item)⟩, where h is the output at the last position of
a causal self-attention encoder over the (left-padded) item-embedding history plus learned
position embeddings, and e the shared item embedding (SASRec, Kang & McAuley 2018). Trained on
logged TRAINING interactions only (``task.classifier_train()``).

Training (``training``):

* ``sequence`` (SASRec): the samples are regrouped into one training sequence per user (the
  longest history + its target; every shorter training pair is a prefix of it), and every
  position predicts the next item under a causal mask, so one pass over the users trains on
  every training pair;
* ``pairs``: every sample is one (history → item) example; label-0 samples are pushed down
  with binary cross-entropy (the ``classify`` phase's generated negatives).

Loss (``loss``): ``ce``, full-softmax cross-entropy over the whole catalogue (cheap at ~12k
items and stronger than sampling: Klenitskiy & Vasilev, RecSys 2023), or ``bce``, SASRec's
binary cross-entropy of the positive against ``negatives`` uniformly sampled items.

Model selection (``select``): ``valid`` ranks the whole catalogue for the task's
leave-one-out VALIDATION users (target = second-to-last item) after every epoch, keeps the
weights of the best epoch by ``select_metric`` and stops after ``patience`` epochs without
improvement (the weights of the best epoch are restored); ``heldout`` does the same on a
random ``valid_fraction`` of the training samples (a task without a validation split).
After training, the test split is ranked once with the restored weights and reported.

Classifier protocol: ``predict_proba`` → ``[N, 2]`` with p(relevant) = σ(score);
``loss`` → per-example BCE against ``sample.label``. ``score(histories, items)`` and
``score_all(histories)`` make it an :class:`advx.components.ItemScorer`, the raw scorer the
``ranker_score`` reward and the AdaGRPO gate use. It reads the catalogue of an
:class:`advx.components.ItemCatalogue` task (checked when it is built).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from advx.accel import backward
from advx.components import BuildContext, ItemCatalogue, require
from advx.distributed import (
    any_rank,
    is_distributed,
    mean_across,
    rank_seed,
    same_on_every_rank,
    shard_bounds,
    shard_map,
    share_scale,
    sum_across,
)
from advx.errors import ConfigError, DataError
from advx.numerics import guarded_step
from advx.rollout import Sample
from advx.schedules import ScheduleConfig, check_schedule, fit_scheduler
from torch import Tensor, nn

from advx_recsys.metrics import metrics_from_ranks, target_ranks

__all__ = ["LeaveOneOutSplits", "RankerConfig", "SASRecRanker", "build_ranker"]

TRAINING = ("sequence", "pairs")
LOSSES = ("ce", "bce")
SELECT = ("valid", "heldout")
SELECT_METRICS = ("hr@10", "ndcg@10")


@runtime_checkable
class LeaveOneOutSplits(Protocol):
    """A task that exposes its leave-one-out evaluation users (``select: valid``)."""

    def eval_pairs(self, split: str, subset: bool = False
                   ) -> list[tuple[Sequence[str], str]]:
        """``(history, target)`` per user of ``split`` (``valid`` or ``test``)."""
        ...


@dataclass
class RankerConfig(ScheduleConfig):
    """The ``classifier:`` block for ``name: ranker``.

    Attributes:
        d_model, num_layers, num_heads, dropout: encoder size (dropout on embeddings, attention
            and feed-forward).
        max_history: most recent items the scorer reads (SASRec's maximum sequence length).
        training: ``sequence`` (every position of each user's training sequence) or
            ``pairs`` (one example per sample; label-0 samples allowed).
        loss: ``ce`` (full softmax over the catalogue) or ``bce`` (sampled negatives).
        negatives: uniformly sampled negatives per positive for ``loss: bce``.
        epochs: maximum number of epochs.
        patience: stop after this many evaluated epochs without improvement (0 = never).
        select: ``valid`` (the task's leave-one-out validation users) or ``heldout``
            (``valid_fraction`` of the training samples).
        select_metric: ``ndcg@10`` or ``hr@10`` (full ranking of the catalogue).
        select_users: evaluate model selection on a fixed random subset of this many users
            (0 = all; the final test ranking always uses all users).
        mask_history: at evaluation, rank the target against items NOT in the user's history
            (the target itself always competes). Off = rank against all items.
        time_budget_s: stop training after this many seconds (0 = no limit); the best epoch
            so far is kept.
        batch_size, lr, weight_decay: training (AdamW).
        valid_fraction: share of samples held out for ``select: heldout``.
        log_every: print a line per this many epochs (0 = quiet); the history is returned
            in the fit metrics either way.
        lr_scheduler, warmup_steps, warmup_ratio, schedule_steps: learning-rate schedule of
            each fit (:class:`advx.schedules.ScheduleConfig`).
    """

    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 2
    dropout: float = 0.2
    max_history: int = 50
    training: str = "sequence"
    loss: str = "ce"
    negatives: int = 1
    epochs: int = 200
    patience: int = 10
    select: str = "valid"
    select_metric: str = "ndcg@10"
    select_users: int = 0
    mask_history: bool = False
    time_budget_s: float = 0.0
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    valid_fraction: float = 0.05
    log_every: int = 0


class SASRecEncoder(nn.Module):
    """Item + position embeddings → causal Transformer encoder → per-position user vectors."""

    def __init__(self, num_items: int, cfg: RankerConfig) -> None:
        super().__init__()
        self.num_heads = cfg.num_heads
        self.max_history = cfg.max_history
        self.items = nn.Embedding(num_items + 1, cfg.d_model, padding_idx=0)  # 0 = padding
        self.positions = nn.Embedding(cfg.max_history, cfg.d_model)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model, cfg.num_heads, 2 * cfg.d_model, cfg.dropout, batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        nn.init.normal_(self.items.weight, std=0.05)  # small dot products: CE starts near log N
        nn.init.normal_(self.positions.weight, std=0.05)
        with torch.no_grad():
            self.items.weight[0].zero_()

    def hidden(self, history: Tensor) -> Tensor:
        """``history [N, L]`` left-padded item indices (0 = pad, L ≤ max_history, positions
        aligned to the right) → ``[N, L, d]``; position t sees positions ≤ t only."""
        length = history.shape[1]
        positions = torch.arange(self.max_history - length, self.max_history,
                                 device=history.device)
        x = self.dropout(self.items(history) + self.positions(positions))
        # causal and no padded keys; a padded query may see itself, so that no attention row
        # is empty (an all -inf row is NaN, and NaN values leak through 0-weights next layer)
        causal = torch.ones(length, length, dtype=torch.bool, device=history.device).triu(1)
        blocked = causal[None] | (history == 0)[:, None, :]
        blocked &= ~torch.eye(length, dtype=torch.bool, device=history.device)[None]
        mask = blocked.repeat_interleave(self.num_heads, dim=0)
        x = self.encoder(x, mask=mask)
        return self.norm(x)

    def user(self, history: Tensor) -> Tensor:
        """``[N, d]``: the last position's vector (the last column is the newest item)."""
        return self.hidden(history)[:, -1]


class SASRecRanker:
    """The ranker classifier (see the module docstring)."""

    def __init__(self, config: RankerConfig, task: ItemCatalogue, device: str = "cpu",
                 seed: int = 0):
        check_schedule(config, "classifier")
        self.config = config
        self.task = task
        self.device = device
        self.seed = seed
        self.net = SASRecEncoder(len(task.items), config).to(device)
        self.history: list[dict[str, float]] = []  # per evaluated epoch, filled by fit

    # ------------------------------------------------------------------ inputs
    def _history(self, histories: Sequence[Sequence[str]], width: int | None = None) -> Tensor:
        """Left-padded ``[N, width]`` indices of the last ``width`` (≤ max_history) items."""
        L = width or self.config.max_history
        out = torch.zeros((len(histories), L), dtype=torch.long)
        for row, history in enumerate(histories):
            idx = [self.task.index[i] + 1 for i in history[-L:] if i in self.task.index]
            if idx:
                out[row, L - len(idx):] = torch.tensor(idx)
        return out.to(self.device)

    def _items(self, items: Sequence[str]) -> Tensor:
        return torch.tensor([self.task.index[i] + 1 for i in items], device=self.device)

    def _parse(self, samples: Sequence[Sample]) -> tuple[list[Sequence[str]], list[str]]:
        histories, items = [], []
        for n, s in enumerate(samples):
            if s.prompt is None or "history" not in s.prompt.meta:
                raise DataError(f"ranker: sample {n} has no prompt.meta['history']")
            item = self.task.item_of(s.text)
            if item is None:
                raise DataError(f"ranker: sample {n} text {s.text!r} names no catalogue item")
            histories.append(s.prompt.meta["history"])
            items.append(item)
        return histories, items

    # ------------------------------------------------------------------ scoring
    def score(self, histories: Sequence[Sequence[str]], items: Sequence[str]) -> Tensor:
        """``[N]`` raw scores ⟨h(history_n), e(item_n)⟩ (no grad)."""
        self.net.eval()
        with torch.no_grad():
            user = self.net.user(self._history(histories))
            return (user * self.net.items(self._items(items))).sum(-1)

    def score_all(self, histories: Sequence[Sequence[str]]) -> Tensor:
        """``[N, num_items]`` scores of every catalogue item (column i = ``task.items[i]``)."""
        self.net.eval()
        with torch.no_grad():
            user = self.net.user(self._history(histories))
            return user @ self.net.items.weight[1:].T

    def predict_proba(self, samples: Sequence[Sample]) -> Tensor:
        histories, items = self._parse(samples)
        p = torch.sigmoid(self.score(histories, items))
        return torch.stack([1 - p, p], dim=-1)

    def loss(self, samples: Sequence[Sample]) -> Tensor:
        histories, items = self._parse(samples)
        labels = torch.tensor([float(s.label or 0) for s in samples], device=self.device)
        return F.binary_cross_entropy_with_logits(
            self.score(histories, items), labels, reduction="none"
        )

    # ------------------------------------------------------------------ evaluation
    def rank_targets(self, histories: Sequence[Sequence[str]], targets: Sequence[str],
                     batch_size: int = 1024) -> Tensor:
        """``[N]`` 0-based rank of each target among ALL catalogue items (one matrix product
        per batch of users; history items excluded when ``mask_history``)."""
        self.net.eval()
        ranks = []
        with torch.no_grad():
            for start in range(0, len(targets), batch_size):
                hist = histories[start : start + batch_size]
                H = self._history(hist)
                scores = self.net.user(H) @ self.net.items.weight[1:].T
                exclude = None
                if self.config.mask_history:
                    exclude = torch.zeros_like(scores, dtype=torch.bool)
                    for row, h in enumerate(hist):
                        cols = [self.task.index[i] for i in h if i in self.task.index]
                        exclude[row, cols] = True
                t = self._items(targets[start : start + batch_size]) - 1
                ranks.append(target_ranks(scores, t, exclude))
        return torch.cat(ranks) if ranks else torch.zeros(0, dtype=torch.long)

    def evaluate_pairs(self, pairs: Sequence[tuple[Sequence[str], str]]) -> dict[str, float]:
        """Full-ranking HR@5/10 and NDCG@5/10 of ``(history, target)`` pairs."""
        ranks = self.rank_targets([h for h, _ in pairs], [t for _, t in pairs])
        return metrics_from_ranks(ranks, (5, 10))

    def _sharded_evaluate(self, pairs: Sequence[tuple[Sequence[str], str]]
                          ) -> dict[str, float]:
        """:meth:`evaluate_pairs` with the users sharded over the ranks (data-parallel fits:
        every rank gets every rank, so all take the same model-selection decisions)."""
        ranks = shard_map(lambda part: self.rank_targets([h for h, _ in part],
                                                         [t for _, t in part]), pairs)
        return metrics_from_ranks(ranks, (5, 10))

    # ------------------------------------------------------------------ training
    def _sequences(self, samples: Sequence[Sample]) -> Tensor:
        """One left-padded ``[U, max_history + 1]`` training sequence per user: the longest
        (history + target) among the user's samples."""
        longest: dict[str, tuple[str, ...]] = {}
        for n, s in enumerate(samples):
            if s.label is not None and int(s.label) != 1:
                raise DataError(
                    f"ranker: sample {n} has label {s.label}; classifier.training: sequence "
                    f"uses logged (label-1) interactions only. Set classifier.training: pairs "
                    f"to train with generated negatives."
                )
            if s.prompt is None or "history" not in s.prompt.meta:
                raise DataError(f"ranker: sample {n} has no prompt.meta['history']")
            user = str(s.prompt.meta.get("user", n))
            item = self.task.item_of(s.text)
            if item is None:
                raise DataError(f"ranker: sample {n} text {s.text!r} names no catalogue item")
            seq = (*s.prompt.meta["history"], item)
            if len(seq) > len(longest.get(user, ())):
                longest[user] = seq
        return self._history(list(longest.values()), self.config.max_history + 1)

    def _logits_loss(self, user: Tensor, targets: Tensor, summed: bool = False) -> Tensor:
        """Loss of user vectors ``[M, d]`` against positive item indices ``[M]`` (1-based):
        the mean over the M rows, or (``summed``, a data-parallel share) the sum."""
        cfg = self.config
        table = self.net.items.weight
        reduction = "sum" if summed else "mean"
        if cfg.loss == "ce":
            return F.cross_entropy(user @ table[1:].T, targets - 1, reduction=reduction)
        negatives = torch.randint(1, table.shape[0], (len(targets), cfg.negatives),
                                  device=self.device)
        pos = (user * table[targets]).sum(-1)
        neg = torch.einsum("md,mkd->mk", user, table[negatives])
        neg_loss = F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg),
                                                      reduction=reduction)
        return (F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos), reduction=reduction)
                + (neg_loss / cfg.negatives if summed else neg_loss))

    def _sequence_batch_loss(self, seqs: Tensor) -> Tensor:
        width = int((seqs != 0).sum(-1).max())  # trim the all-padding left columns
        seqs = seqs[:, -width:]
        inputs, targets = seqs[:, :-1], seqs[:, 1:]
        real = (targets != 0) & (inputs != 0)
        hidden = self.net.hidden(inputs)
        return self._logits_loss(hidden[real], targets[real])

    def _pair_batch_loss(self, histories: Tensor, items: Tensor, labels: Tensor) -> Tensor:
        user = self.net.user(histories)
        positive = labels == 1
        loss = torch.zeros((), device=self.device)
        if positive.any():
            loss = loss + self._logits_loss(user[positive], items[positive])
        if (~positive).any():
            neg = (user[~positive] * self.net.items(items[~positive])).sum(-1)
            loss = loss + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))
        return loss

    def _sharded_batch_loss(self, data: tuple[Tensor, ...], batch: Tensor, step: int
                            ) -> Tensor:
        """Data-parallel: the loss this rank differentiates for the global minibatch
        ``batch``. Each mean of the one-process loss (over the real positions in
        ``sequence`` training; over the positive and the negative rows in ``pairs``) becomes
        the share's sum scaled by the whole minibatch's count (:func:`share_scale`), so the
        ranks' average — what ``guarded_step`` takes — is the one-process loss and gradient.
        Dropout and sampled negatives draw from a per-rank seed."""
        lo, hi = shard_bounds(len(batch))
        part = [d[batch[lo:hi]] for d in data]
        if self.config.training == "sequence":
            seqs = part[0]
            counts = [float(((seqs[:, 1:] != 0) & (seqs[:, :-1] != 0)).sum())]
        else:
            positive = part[2] == 1
            counts = [float(positive.sum()), float((~positive).sum())]
        whole = sum_across(counts)  # the minibatch's counts over every share
        loss = torch.zeros((), device=self.device)
        if not hi > lo:
            return loss
        with rank_seed(step):
            if self.config.training == "sequence":
                width = int((seqs != 0).sum(-1).max())  # trim the all-padding left columns
                seqs = seqs[:, -width:]
                inputs, targets = seqs[:, :-1], seqs[:, 1:]
                real = (targets != 0) & (inputs != 0)
                if real.any():
                    hidden = self.net.hidden(inputs)
                    loss = loss + self._logits_loss(hidden[real], targets[real], summed=True
                                                    ) * share_scale(whole[0])
                return loss
            histories, items, _ = part
            user = self.net.user(histories)
            if positive.any():
                loss = loss + self._logits_loss(user[positive], items[positive], summed=True
                                                ) * share_scale(whole[0])
            if (~positive).any():
                neg = (user[~positive] * self.net.items(items[~positive])).sum(-1)
                loss = loss + F.binary_cross_entropy_with_logits(
                    neg, torch.zeros_like(neg), reduction="sum") * share_scale(whole[1])
        return loss

    def _batches(self, first: Tensor, rng: np.random.Generator) -> list[Tensor]:
        """Shuffled batches; in ``sequence`` training, users of similar length share a batch
        (random windows of 32 batches sorted by length), so a batch of short histories is
        not padded to ``max_history`` — most Amazon users have fewer than 10 items."""
        order = rng.permutation(len(first))
        size = self.config.batch_size
        if self.config.training == "sequence":
            lengths = (first != 0).sum(-1).cpu().numpy()
            window = size * 32
            for start in range(0, len(order), window):
                part = order[start : start + window]
                order[start : start + window] = part[np.argsort(lengths[part], kind="stable")]
        batches = [torch.as_tensor(order[i : i + size], device=self.device)
                   for i in range(0, len(order), size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def _selection_pairs(self, samples: Sequence[Sample], rng: np.random.Generator
                         ) -> tuple[list[tuple[Sequence[str], str]], np.ndarray]:
        """Model-selection pairs, and the sample rows left for training (``heldout`` holds
        some out)."""
        cfg = self.config
        rows = np.arange(len(samples))
        if cfg.select == "valid":
            pairs = self.task.eval_pairs("valid")  # type: ignore[attr-defined]
        else:
            order = rng.permutation(len(samples))
            n_valid = int(len(samples) * cfg.valid_fraction)
            rows = np.sort(order[n_valid:])
            held = [samples[i] for i in order[:n_valid] if samples[i].label in (None, 1)]
            histories, items = self._parse(held)
            pairs = list(zip(histories, items, strict=True))
        if cfg.select_users and cfg.select_users < len(pairs):
            picked = np.sort(rng.choice(len(pairs), cfg.select_users, replace=False))
            pairs = [pairs[i] for i in picked]
        return pairs, rows

    def fit(self, samples: Sequence[Sample]) -> dict[str, float]:
        if not samples:
            raise DataError("ranker.fit: no training samples")
        cfg = self.config
        # Data-parallel (advx.distributed): with the same samples on every rank (checked),
        # each rank trains on its share of every minibatch (the same minibatches everywhere:
        # the numpy stream is seeded alike) and model selection's ranking is sharded.
        sharded = is_distributed() and same_on_every_rank("\n".join(
            f"{s.label}\t{s.text}\t{(s.prompt.meta if s.prompt is not None else {})!r}"
            for s in samples))
        evaluate = self._sharded_evaluate if sharded else self.evaluate_pairs
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        selection, rows = self._selection_pairs(samples, rng)
        if cfg.training == "sequence":
            data = (self._sequences([samples[i] for i in rows]),)
        else:
            picked = [samples[i] for i in rows]
            histories, item_ids = self._parse(picked)
            labels = [int(s.label if s.label is not None else 1) for s in picked]
            data = (self._history(histories), self._items(item_ids),
                    torch.tensor(labels, device=self.device))
        opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = fit_scheduler(opt, cfg, examples=len(data[0]), batch_size=cfg.batch_size,
                                  epochs=cfg.epochs, where="classifier")
        best, best_epoch, best_state = -1.0, 0, None
        started, last_loss, since_best = time.perf_counter(), float("nan"), 0
        self.history = []
        epoch = 0
        for epoch in range(1, cfg.epochs + 1):
            self.net.train()
            batches = self._batches(data[0], rng)
            total, count = 0.0, 0
            for batch in batches:
                if sharded:
                    loss = self._sharded_batch_loss(data, batch, epoch * len(data[0]) + count)
                elif cfg.training == "sequence":
                    loss = self._sequence_batch_loss(data[0][batch])
                else:
                    loss = self._pair_batch_loss(*(d[batch] for d in data))
                opt.zero_grad()
                if loss.requires_grad:  # data-parallel: an empty share has nothing to do
                    backward(loss)
                # data-parallel: guarded_step averages the gradients (and the loss) first
                guarded_step(opt, self.net.parameters(), loss=loss, what="ranker")
                scheduler.step()
                total += float(loss.detach()) * len(batch)
                count += len(batch)
            if sharded:  # the ranks' losses average to the minibatches' losses
                total = mean_across(total)
            last_loss = total / max(count, 1)
            record = {"epoch": float(epoch), "train_loss": last_loss,
                      "seconds": time.perf_counter() - started}
            if selection:
                record.update(evaluate(selection))
                value = record[cfg.select_metric]
                if value > best:
                    best, best_epoch, since_best = value, epoch, 0
                    best_state = copy.deepcopy(self.net.state_dict())
                else:
                    since_best += 1
            self.history.append(record)
            if cfg.log_every and epoch % cfg.log_every == 0:
                print("ranker " + " ".join(f"{k}={v:.4g}" for k, v in record.items()),
                      flush=True)
            if cfg.patience and since_best >= cfg.patience:
                break
            out_of_time = bool(cfg.time_budget_s) and (
                time.perf_counter() - started > cfg.time_budget_s)
            if any_rank(out_of_time) if sharded else out_of_time:  # every rank stops alike
                break
        if best_state is not None:
            self.net.load_state_dict(best_state)
        self.net.eval()
        out = {
            "ranker/train_loss": last_loss,
            "ranker/epochs": float(epoch),
            "ranker/best_epoch": float(best_epoch),
            "ranker/train_seconds": time.perf_counter() - started,
            f"ranker/select_{cfg.select_metric}": max(best, 0.0),
        }
        if selection:
            best_record = self.history[best_epoch - 1]
            out.update({f"ranker/{cfg.select}_{k}": best_record[k]
                        for k in ("hr@5", "hr@10", "ndcg@5", "ndcg@10")})
        if isinstance(self.task, LeaveOneOutSplits):
            test = evaluate(self.task.eval_pairs("test"))
            out.update({f"ranker/test_{k}": v for k, v in test.items()})
        return out

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.net.load_state_dict(state["net"])


def build_ranker(config: RankerConfig, ctx: BuildContext) -> SASRecRanker:
    task = ctx.task
    if task is None:
        raise ConfigError("classifier ranker needs an item-recommendation task "
                          "(task.name: next_item)")
    require(task, ItemCatalogue, role=ctx.describe("task"),
            needed_by="classifier 'ranker' (it embeds the task's catalogue)")
    for key, value, allowed in (("training", config.training, TRAINING),
                                ("loss", config.loss, LOSSES),
                                ("select", config.select, SELECT),
                                ("select_metric", config.select_metric, SELECT_METRICS)):
        if value not in allowed:
            raise ConfigError(f"classifier.{key} must be one of {', '.join(allowed)}, "
                              f"got {value!r}")
    if config.select == "valid" and not isinstance(task, LeaveOneOutSplits):
        raise ConfigError(
            f"classifier.select: valid needs a task with leave-one-out validation users "
            f"(eval_pairs); {ctx.describe('task')} has none. Set classifier.select: heldout."
        )
    if config.d_model % config.num_heads:
        raise ConfigError("classifier.d_model must be divisible by classifier.num_heads")
    if config.loss == "bce" and config.negatives < 1:
        raise ConfigError("classifier.negatives must be ≥ 1 for classifier.loss: bce")
    if config.max_history < 1 or config.epochs < 1 or config.batch_size < 1:
        raise ConfigError("classifier.max_history, epochs and batch_size must be ≥ 1")
    torch.manual_seed(ctx.seed)
    return SASRecRanker(config, task, ctx.device, ctx.seed)

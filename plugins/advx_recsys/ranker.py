"""Classifier ``ranker``: a small SASRec-style sequential scorer, the "production ranker".

score(history, item) = ⟨h(history), e(item)⟩, where h is the output at the last position of
a self-attention encoder over the (left-padded) item-embedding history plus learned position
embeddings, and e the shared item embedding (SASRec, Kang & McAuley 2018). Trained on
logged TRAINING interactions only (``task.classifier_train()``): full-softmax cross-entropy
over the catalogue for label-1 samples (next item among all items), plus binary
cross-entropy pushing label-0 samples down when any are given. It holds out
``valid_fraction`` of its samples to report its own HR@10 and keep the best epoch.

Classifier protocol: ``predict_proba`` → ``[N, 2]`` with p(relevant) = σ(score);
``loss`` → per-example BCE against ``sample.label``. ``score(histories, items)`` and
``score_all(histories)`` make it an :class:`advx.components.ItemScorer`, the raw scorer the
``ranker_score`` reward and the AdaGRPO gate use. It reads the catalogue of an
:class:`advx.components.ItemCatalogue` task (checked when it is built).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from advx.accel import backward
from advx.components import BuildContext, ItemCatalogue, require
from advx.errors import ConfigError, DataError
from advx.numerics import guarded_step
from advx.rollout import Sample
from advx.schedules import ScheduleConfig, check_schedule, fit_scheduler
from torch import Tensor, nn

__all__ = ["RankerConfig", "SASRecRanker", "build_ranker"]


@dataclass
class RankerConfig(ScheduleConfig):
    """The ``classifier:`` block for ``name: ranker``.

    Attributes:
        d_model, n_layers, n_heads, dropout: encoder size.
        max_history: most recent items the scorer reads.
        epochs, batch_size, lr, weight_decay: training.
        valid_fraction: share of samples held out to pick the best epoch (HR@10 on them).
        lr_scheduler, warmup_steps, warmup_ratio, schedule_steps: learning-rate schedule of
            each fit (:class:`advx.schedules.ScheduleConfig`).
    """

    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    dropout: float = 0.2
    max_history: int = 20
    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    valid_fraction: float = 0.05


class SASRecEncoder(nn.Module):
    """Item + position embeddings → Transformer encoder → last-position user vector."""

    def __init__(self, num_items: int, cfg: RankerConfig) -> None:
        super().__init__()
        self.items = nn.Embedding(num_items + 1, cfg.d_model, padding_idx=0)  # 0 = padding
        self.positions = nn.Embedding(cfg.max_history, cfg.d_model)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model, cfg.n_heads, 2 * cfg.d_model, cfg.dropout, batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        nn.init.normal_(self.items.weight, std=0.05)  # small dot products: CE starts near log N
        nn.init.normal_(self.positions.weight, std=0.05)
        with torch.no_grad():
            self.items.weight[0].zero_()

    def user(self, history: Tensor) -> Tensor:
        """``history [N, L]`` left-padded item indices (0 = pad; last column real) → ``[N, d]``."""
        positions = torch.arange(history.shape[1], device=history.device)
        x = self.dropout(self.items(history) + self.positions(positions))
        x = self.encoder(x, src_key_padding_mask=history == 0)
        return self.norm(x[:, -1])


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

    # ------------------------------------------------------------------ inputs
    def _history(self, histories: Sequence[Sequence[str]]) -> Tensor:
        L = self.config.max_history
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

    # ------------------------------------------------------------------ training
    def _batch_loss(self, histories: Tensor, items: Tensor, labels: Tensor) -> Tensor:
        user = self.net.user(histories)
        logits = user @ self.net.items.weight[1:].T  # [N, num_items]
        positive = labels == 1
        loss = torch.zeros((), device=self.device)
        if positive.any():
            loss = loss + F.cross_entropy(logits[positive], items[positive] - 1)
        if (~positive).any():
            neg = logits[~positive].gather(1, (items[~positive] - 1)[:, None])[:, 0]
            loss = loss + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))
        return loss

    def _hr10(self, histories: Tensor, items: Tensor) -> float:
        self.net.eval()
        with torch.no_grad():
            hits = 0
            for start in range(0, len(items), 1024):
                user = self.net.user(histories[start : start + 1024])
                logits = user @ self.net.items.weight[1:].T
                top = logits.topk(10, dim=-1).indices + 1
                hits += int((top == items[start : start + 1024, None]).any(-1).sum())
        return hits / max(len(items), 1)

    def fit(self, samples: Sequence[Sample]) -> dict[str, float]:
        if not samples:
            raise DataError("ranker.fit: no training samples")
        cfg = self.config
        histories, item_ids = self._parse(samples)
        H, items = self._history(histories), self._items(item_ids)
        Y = torch.tensor([int(s.label if s.label is not None else 1) for s in samples],
                         device=self.device)
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(samples))
        n_valid = int(len(samples) * cfg.valid_fraction)
        valid, train = order[:n_valid], order[n_valid:]
        valid_pos = valid[(Y[valid] == 1).cpu().numpy()] if n_valid else valid
        torch.manual_seed(self.seed)
        opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = fit_scheduler(opt, cfg, examples=len(train), batch_size=cfg.batch_size,
                                  epochs=cfg.epochs, where="classifier")
        best, best_state, last_loss = -1.0, None, float("nan")
        for _ in range(cfg.epochs):
            self.net.train()
            rng.shuffle(train)
            total = 0.0
            for start in range(0, len(train), cfg.batch_size):
                rows = torch.as_tensor(train[start : start + cfg.batch_size], device=self.device)
                loss = self._batch_loss(H[rows], items[rows], Y[rows])
                opt.zero_grad()
                backward(loss)
                guarded_step(opt, self.net.parameters(), loss=loss, what="ranker")
                scheduler.step()
                total += float(loss.detach()) * len(rows)
            last_loss = total / max(len(train), 1)
            if len(valid_pos):
                hr = self._hr10(H[valid_pos], items[valid_pos])
                if hr > best:
                    best, best_state = hr, copy.deepcopy(self.net.state_dict())
        if best_state is not None:
            self.net.load_state_dict(best_state)
        self.net.eval()
        return {"ranker/train_loss": last_loss, "ranker/heldout_hr@10": max(best, 0.0)}

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
    if config.d_model % config.n_heads:
        raise ConfigError("classifier.d_model must be divisible by classifier.n_heads")
    torch.manual_seed(ctx.seed)
    return SASRecRanker(config, task, ctx.device, ctx.seed)

"""SeqGAN's CNN discriminator: convolutions of many widths, max-over-time, highway, dropout.

The text classifier of Kim (2014) as configured in the SeqGAN reference code: embedding 64;
window sizes 1..10, 15, 20 with 100-200-200-200-200-100-100-100-100-100-160-160 filters;
ReLU, max-pool over time; one highway layer; dropout (keep 0.75); a 2-way softmax whose
weights carry an L2 penalty ``l2_reg * (||W||² + ||b||²) / 2`` (``tf.nn.l2_loss``); Adam at
1e-4. Class 1 is "real". Every size is a recipe key.

Predictions (no gradient) take an exact shortcut: the first layer is linear in the embedding,
and the embedding is a look-up, so a convolution over embedded tokens is a sum of look-ups in
per-token tables built once per set of weights (:class:`TokenTables`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from advx.accel import backward
from advx.components import BuildContext
from advx.distributed import (
    is_distributed,
    mean_across,
    rank_seed,
    same_on_every_rank,
    shard_bounds,
    shard_map,
    share_scale,
)
from advx.errors import ConfigError, DataError
from advx.generator_kit import check_minimums
from advx.numerics import guarded_step
from advx.rollout import Sample
from advx.schedules import ScheduleConfig, check_schedule, fit_scheduler
from torch import Tensor, nn

from advx_seqgan.vocab import VocabKind, build_vocab

PAPER_FILTER_SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20]
PAPER_NUM_FILTERS = [100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160]


@dataclass
class CNNConfig(ScheduleConfig):
    """The ``classifier:`` block for ``name: cnn_discriminator``.

    Attributes:
        vocab: ``ids`` (oracle) or ``word`` (trained on ``task.texts()``), as the generator.
        vocab_size: vocabulary size (``ids``: exact; ``word``: at most).
        lowercase: lowercase words (``word`` only).
        max_len: sequences are padded/truncated to this length (>= the widest window).
        emb_dim: embedding size (64).
        filter_sizes: convolution window widths (1..10, 15, 20).
        num_filters: filters per width (paper: 1,720 in total).
        dropout: dropout probability before the output layer (keep 0.75 → 0.25).
        l2_reg: L2 weight of the output layer (0.2).
        lr: Adam learning rate (1e-4).
        epochs: passes over the data per ``fit`` (SeqGAN: 3 per d-step).
        batch_size: minibatch size (64).
        max_batches: stop a ``fit`` after this many minibatches in all (0 = no cap: every
            minibatch of every epoch). Texygen's SeqGAN trains its discriminator on 3
            minibatches of 64 per call, drawn from the shuffled reals + fakes (``max_batches: 3``,
            ``epochs: 1``).
        valid_fraction: share of ``fit``'s data held out to report accuracy (0 = none).
        predict_batch: rows per forward pass in ``predict_proba``.
        predict_tables_mb: the largest :class:`TokenTables` (MB, ``4·V·Σ w·F_w`` bytes: 238 MiB for
            the paper's CNN at V = 5000) predictions may keep; above it, or at 0, they convolve.
        device: torch device; empty means the run's device.
        lr_scheduler, warmup_steps, warmup_ratio, schedule_steps: learning-rate schedule of
            each fit (:class:`advx.schedules.ScheduleConfig`).
    """

    vocab: VocabKind = VocabKind.word
    vocab_size: int = 5000
    lowercase: bool = False
    max_len: int = 20
    emb_dim: int = 64
    filter_sizes: list[int] = field(default_factory=lambda: list(PAPER_FILTER_SIZES))
    num_filters: list[int] = field(default_factory=lambda: list(PAPER_NUM_FILTERS))
    dropout: float = 0.25
    l2_reg: float = 0.2
    lr: float = 1e-4
    epochs: int = 3
    batch_size: int = 64
    max_batches: int = 0
    valid_fraction: float = 0.1
    predict_batch: int = 256
    predict_tables_mb: int = 1024
    device: str = ""


class Highway(nn.Module):
    """y = t ⊙ relu(W_h x) + (1 − t) ⊙ x, with t = σ(W_t x)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.transform = nn.Linear(size, size)
        self.gate = nn.Linear(size, size)

    def forward(self, x: Tensor) -> Tensor:
        t = torch.sigmoid(self.gate(x))
        return t * F.relu(self.transform(x)) + (1 - t) * x


class CNNModel(nn.Module):
    def __init__(self, config: CNNConfig, vocab_size: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, config.emb_dim)
        self.convs = nn.ModuleList(
            nn.Conv1d(config.emb_dim, n, k)
            for k, n in zip(config.filter_sizes, config.num_filters, strict=True)
        )
        total = sum(config.num_filters)
        self.highway = Highway(total)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(total, 2)

    def forward(self, ids: Tensor) -> Tensor:
        """``ids [B, L]`` → logits ``[B, 2]``."""
        x = self.embed(ids).transpose(1, 2)  # [B, E, L]
        return self.head([F.relu(conv(x)).amax(-1) for conv in self.convs])

    def head(self, pooled: list[Tensor]) -> Tensor:
        """Max-pooled features of every window width → logits: highway, dropout, output."""
        return self.out(self.dropout(self.highway(torch.cat(pooled, -1))))


class TokenTables:
    """The convolutions of a :class:`CNNModel` as look-ups, for predictions.

    A convolution of width w over embedded tokens is, at position p,

        conv_w(E[x])[p] = b + Σ_{k<w} W_k E[x_{p+k}] = b + Σ_{k<w} T_{w,k}[x_{p+k}],

    with the table T_{w,k} = E W_kᵀ ``[V, F_w]`` computed once for the whole vocabulary. One
    ``F.embedding_bag(mode="sum")`` per width then replaces the convolution's multiply-adds by
    row reads: 3.7× faster on 2 CPU threads for the paper's CNN (``benchmarks/cnn_predict.py``),
    equal to float rounding (``tests/seqgan/test_tasks.py``). Valid while the weights are
    unchanged: :meth:`matches` compares the tensors' in-place version counters, which every
    optimizer step and ``load_state_dict`` advance.
    """

    def __init__(self, model: CNNModel) -> None:
        self.key = self._weights_key(model)
        embed = model.embed.weight.detach()
        vocab_size = model.embed.num_embeddings
        # per width: rows k·V + v hold T_{w,k}[v]  -> [w·V, F_w]
        self.tables = [
            torch.einsum("ve,fek->kvf", embed, conv.weight.detach()).reshape(-1, conv.out_channels)
            for conv in model.convs
        ]
        # the table row of token v at offset k is k·V + v
        self.offsets = [torch.arange(conv.kernel_size[0], device=embed.device) * vocab_size
                        for conv in model.convs]

    @staticmethod
    def nbytes(model: CNNModel) -> int:
        """Bytes the tables of ``model`` would take (fp32)."""
        widths = sum(c.kernel_size[0] * c.out_channels for c in model.convs)
        return 4 * model.embed.num_embeddings * widths

    @staticmethod
    def _weights_key(model: CNNModel) -> tuple[tuple[int, int], ...]:
        params = [model.embed.weight, *(conv.weight for conv in model.convs)]
        return tuple((p.data_ptr(), p._version) for p in params)

    def matches(self, model: CNNModel) -> bool:
        return self.key == self._weights_key(model)

    def pooled(self, model: CNNModel, ids: Tensor) -> list[Tensor]:
        """ReLU + max-over-time of every convolution of ``ids [B, L]``, by look-ups.

        max_p relu(s_p + b) = relu(max_p s_p + b): the bias and the ReLU are monotone, so they
        are applied after the max, to ``[B, F]`` instead of ``[B, L−w+1, F]``.
        """
        batch, length = ids.shape
        pooled = []
        for conv, table, offsets in zip(model.convs, self.tables, self.offsets, strict=True):
            width = len(offsets)
            windows = ids.unfold(1, width, 1) + offsets  # [B, L−w+1, w] rows of the table
            summed = F.embedding_bag(windows.reshape(-1, width), table, mode="sum")
            pooled.append(F.relu(summed.view(batch, length - width + 1, -1).amax(1) + conv.bias))
        return pooled


class CNNDiscriminator:
    """The ``cnn_discriminator`` classifier; satisfies ``advx.Classifier``."""

    def __init__(self, config: CNNConfig, texts: Sequence[str], seed: int, device: str) -> None:
        if len(config.filter_sizes) != len(config.num_filters):
            raise ConfigError(
                "classifier.filter_sizes and classifier.num_filters must have the same length "
                f"(got {len(config.filter_sizes)} and {len(config.num_filters)})"
            )
        if max(config.filter_sizes) > config.max_len:
            raise ConfigError(
                f"classifier.max_len ({config.max_len}) must be >= the widest window "
                f"({max(config.filter_sizes)})"
            )
        check_schedule(config, "classifier")
        self.config = config
        self.device = torch.device(config.device or device)
        self.vocab = build_vocab(config.vocab, texts, config.vocab_size, config.lowercase)
        torch.manual_seed(seed)
        self.model = CNNModel(config, self.vocab.size).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.rng = np.random.default_rng(seed)
        self._tables: TokenTables | None = None

    def encode(self, samples: Sequence[Sample]) -> Tensor:
        """``[N, max_len]`` ids, right-padded with the vocabulary's pad id."""
        width = self.config.max_len
        ids = np.full((len(samples), width), self.vocab.pad_id, dtype=np.int64)
        for i, sample in enumerate(samples):
            row = self.vocab.encode(sample.text)[:width]
            ids[i, : len(row)] = row
        return torch.from_numpy(ids).to(self.device)

    def _labels(self, samples: Sequence[Sample]) -> Tensor:
        missing = [i for i, s in enumerate(samples) if s.label not in (0, 1)]
        if missing:
            raise DataError(
                f"cnn_discriminator needs labels 0 (generated) or 1 (real); sample {missing[0]} "
                f"has label {samples[missing[0]].label!r}"
            )
        return torch.tensor([s.label for s in samples], device=self.device)

    def _l2(self) -> Tensor:
        out = self.model.out
        return (out.weight.pow(2).sum() + out.bias.pow(2).sum()) / 2

    def _loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        return F.cross_entropy(logits, labels) + self.config.l2_reg * self._l2()

    def _sharded_loss(self, ids: Tensor, labels: Tensor, rows: Tensor, step: int) -> Tensor:
        """Data-parallel: the loss this rank differentiates for the global minibatch ``rows``:
        its share's summed cross-entropy scaled so the ranks' average is the minibatch's mean
        (:func:`advx.distributed.share_scale`), plus the L2 term (the same on every rank, so
        its average is itself). Dropout draws from a per-rank seed; the global RNG stays the
        same on every rank."""
        lo, hi = shard_bounds(len(rows))
        part = rows[lo:hi]
        with rank_seed(step):
            summed = (F.cross_entropy(self.model(ids[part]), labels[part], reduction="sum")
                      if len(part) else torch.zeros((), device=self.device))
        return summed * share_scale(len(rows)) + self.config.l2_reg * self._l2()

    def fit(self, samples: Sequence[Sample]) -> dict[str, float]:
        """``epochs`` passes of shuffled minibatches; holds out ``valid_fraction`` for accuracy.
        Data-parallel (:mod:`advx.distributed`): with the same samples on every rank
        (checked), each rank trains on its share of every minibatch (the same minibatches
        everywhere: ``self.rng`` is replicated) and the validation is sharded."""
        if not samples:
            raise DataError("cnn_discriminator.fit got no samples")
        sharded = is_distributed() and same_on_every_rank(
            "\n".join(f"{s.label}\t{s.text}" for s in samples))
        ids, labels = self.encode(samples), self._labels(samples)
        order = torch.from_numpy(self.rng.permutation(len(samples))).to(self.device)
        n_valid = int(len(samples) * self.config.valid_fraction)
        valid, train = order[:n_valid], order[n_valid:]
        self.model.train()
        batch_size, cap = self.config.batch_size, self.config.max_batches
        steps = self.config.epochs * max(-(-len(train) // batch_size), 1)
        if cap:
            steps = min(steps, cap)
        # the schedule spans the steps this fit takes (fewer than the epochs' under a cap)
        scheduler = fit_scheduler(self.optimizer, self.config, examples=steps * batch_size,
                                  batch_size=batch_size, epochs=1, where="classifier")
        loss_sum, seen, taken = 0.0, 0, 0
        for _ in range(self.config.epochs):
            if cap and taken >= cap:
                break
            perm = train[torch.from_numpy(self.rng.permutation(len(train))).to(self.device)]
            for start in range(0, len(perm), batch_size):
                if cap and taken >= cap:
                    break
                taken += 1
                rows = perm[start : start + batch_size]
                if sharded:
                    loss = self._sharded_loss(ids, labels, rows, seen)
                else:
                    loss = self._loss(self.model(ids[rows]), labels[rows])
                self.optimizer.zero_grad()
                backward(loss)
                # data-parallel: guarded_step averages the gradients (and the loss) first
                guarded_step(self.optimizer, self.model.parameters(), loss=loss,
                             what="cnn_discriminator fit")
                scheduler.step()
                loss_sum += float(loss.detach()) * len(rows)
                seen += len(rows)
        if sharded:  # the ranks' losses average to the minibatches' losses
            loss_sum = mean_across(loss_sum)
        metrics = {"cls/loss": loss_sum / max(seen, 1), "cls/train_size": float(len(train)),
                   "cls/batches": float(taken)}
        if n_valid:
            def proba(part: Sequence[int]) -> Tensor:  # a share of the validation rows
                return self._proba_ids(ids[valid[torch.as_tensor(part, dtype=torch.long)]])

            probs = (shard_map(proba, list(range(n_valid))) if sharded
                     else self._proba_ids(ids[valid]))
            metrics["cls/valid_acc"] = float((probs.argmax(-1) == labels[valid]).float().mean())
        return metrics

    @torch.no_grad()
    def _proba_ids(self, ids: Tensor) -> Tensor:
        self.model.eval()
        tables = self._token_tables()
        chunks = [
            torch.softmax(self._logits(chunk, tables), -1)
            for chunk in ids.split(self.config.predict_batch)
        ]
        return torch.cat(chunks) if chunks else torch.zeros(0, 2, device=self.device)

    def _logits(self, ids: Tensor, tables: TokenTables | None) -> Tensor:
        if tables is None:
            return self.model(ids)
        return self.model.head(tables.pooled(self.model, ids))

    def _token_tables(self) -> TokenTables | None:
        """The look-up tables of the current weights (rebuilt after they change), or None when
        they would exceed ``predict_tables_mb``."""
        if TokenTables.nbytes(self.model) > self.config.predict_tables_mb * 2**20:
            return None
        if self._tables is None or not self._tables.matches(self.model):
            self._tables = None  # free the stale tables before building the new ones
            self._tables = TokenTables(self.model)
        return self._tables

    def predict_proba(self, samples: Sequence[Sample]) -> Tensor:
        """``[N, 2]``: column 1 is P(real)."""
        return self._proba_ids(self.encode(samples))

    @torch.no_grad()
    def loss(self, samples: Sequence[Sample]) -> Tensor:
        """``[N]`` cross-entropy against each sample's label (no L2 term)."""
        probs = self.predict_proba(samples)
        labels = self._labels(samples)
        return -torch.log(probs.gather(1, labels[:, None]).squeeze(1).clamp(min=1e-12))

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


    def export(self, path: Path) -> None:
        """``advx export``: ``model.safetensors`` (the ``CNNModel`` state dict: embedding,
        one ``Conv2d`` per filter size, highway, dropout-free linear output), ``config.json``
        (the classifier config plus ``vocab_size``, ``pad_id``) and the vocabulary;
        docs/using-models.md shows how to rebuild it."""
        from advx_hf import save_module

        info = {**asdict(self.config), "kind": "classifier", "architecture": "cnn",
                "vocab_size": self.vocab.size, "vocab": self.vocab.kind,
                "pad_id": self.vocab.pad_id}
        save_module(self.model, Path(path), "model", info, info_file="config.json")
        self.vocab.save(Path(path))


def build_cnn_discriminator(config: CNNConfig, ctx: BuildContext) -> CNNDiscriminator:
    check_minimums("classifier", config, {"batch_size": 1, "epochs": 0, "max_batches": 0})
    texts = list(ctx.task.texts()) if ctx.task is not None and config.vocab == "word" else []
    return CNNDiscriminator(config, texts, ctx.seed, ctx.device)

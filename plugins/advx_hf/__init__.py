"""Hugging Face helpers shared by the built-in model plugins. A library, not a plugin.

It registers nothing and is deliberately absent from the ``advx`` entry points in
``pyproject.toml``: the ``seq2seq``, ``causal``, ``lstm`` (word vocabulary) and
``encoder_classifier`` plugins import it, so it lives beside them under ``plugins/`` but
outside ``advx`` core, which must not depend on ``transformers``/``tokenizers``.

* :func:`train_tokenizer`: with no model hub, a ``tiny`` model's tokenizer is trained on the
  task's own texts with the ``tokenizers`` library and wrapped as a
  ``PreTrainedTokenizerFast``, so it saves and reloads like any Hugging Face tokenizer.
* :func:`loading`: ``from_pretrained`` without transformers' progress bars when the run is
  quiet (``advx run -q``), with them otherwise.
* :func:`export_pretrained`, :func:`save_module`: the ``export(path)`` methods of the model
  plugins (``advx export``): a Hugging Face directory (safetensors weights, config,
  tokenizer) and plain ``torch.nn`` modules as safetensors + a JSON description.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from safetensors.torch import save_file
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from torch import nn
from transformers import PreTrainedTokenizerFast

__all__ = ["SPECIAL_TOKENS", "export_pretrained", "loading", "save_module",
           "train_tokenizer"]

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


@contextmanager
def loading(quiet: bool) -> Iterator[None]:
    """Within the block, transformers shows no progress bars (e.g. "Loading weights") if
    ``quiet``; the previous setting is restored afterwards."""
    from transformers.utils import logging as hf_logging

    if not quiet:
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def export_pretrained(model: Any, tokenizer: Any, path: Path,
                      advx: Mapping[str, Any] | None = None) -> None:
    """``save_pretrained`` of model (safetensors) and tokenizer into ``path``, plus
    ``advx.json`` with what using the model needs beyond it (the prompt template, ...)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    if advx:
        (path / "advx.json").write_text(json.dumps(dict(advx), indent=2) + "\n")


def save_module(module: nn.Module, path: Path, name: str, info: Mapping[str, Any]) -> None:
    """``<name>.safetensors`` (the module's state dict) and ``<name>.json`` (``info``: what
    the weights are and how to rebuild the module around them) in ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(tensors, str(path / f"{name}.safetensors"))
    (path / f"{name}.json").write_text(json.dumps(dict(info), indent=2) + "\n")

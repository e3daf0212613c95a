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
* :func:`without_adapters`, :func:`save_adapter`: a LoRA-trained model (``lora:``,
  :mod:`advx.lora`) is exported merged (a plain ``transformers`` directory) and its adapter in
  peft's own format (``PeftModel.from_pretrained(base, path)``).
"""

from __future__ import annotations

import copy
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

__all__ = [
    "SPECIAL_TOKENS",
    "export_lora",
    "export_pretrained",
    "has_adapters",
    "loading",
    "save_adapter",
    "save_module",
    "train_tokenizer",
    "without_adapters",
]

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


def export_lora(model: nn.Module, tokenizer: Any, path: Path, base_name: str,
                config: Any = None) -> dict[str, Any]:
    """The adapter part of a LoRA model's export (:func:`export_pretrained` wrote the merged
    model into ``path``): ``path/adapter/`` (:func:`save_adapter`) and, when the base exists
    nowhere else, the frozen base as a Hugging Face directory ``path/base/``: ``tiny`` (random
    weights made by the run), ``bert2bert:...`` (cross-attention initialised by the run), or a
    base that absorbed the SFT adapter when π_ref was taken (:func:`advx.lora.base_is_folded`).
    Returns the ``advx.json`` entries that say where the adapter and its base are."""
    from advx.lora import base_is_folded

    path = Path(path)
    save_adapter(model, path / "adapter", config)
    if base_name == "tiny" or base_name.startswith("bert2bert:") or base_is_folded(model):
        base = without_adapters(model, merge=False)
        export_pretrained(base, tokenizer, path / "base")
        base_name = "base"
    return {"lora_adapter": "adapter", "lora_base": base_name}


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


def save_module(module: nn.Module, path: Path, name: str, info: Mapping[str, Any],
                info_file: str | None = None) -> None:
    """``<name>.safetensors`` (the module's state dict) and ``<name>.json`` (or ``info_file``;
    ``info``: what the weights are and how to rebuild the module around them) in ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(tensors, str(path / f"{name}.safetensors"))
    (path / (info_file or f"{name}.json")).write_text(
        json.dumps(dict(info), indent=2, default=str) + "\n")


def has_adapters(model: nn.Module) -> bool:
    """Whether ``model`` carries peft LoRA adapters (a PeftModel, or adapters injected with
    ``peft.inject_adapter_in_model`` as the encoder classifier's ``lora:`` does)."""
    return any("lora_" in name for name, _ in model.named_parameters())


def without_adapters(model: nn.Module, merge: bool) -> nn.Module:
    """A copy of ``model`` with its LoRA adapters removed: merged into the base weights
    (``merge=True``: the trained model as plain ``transformers`` modules) or dropped (the
    frozen base the adapter applies to). ``model`` itself is untouched (a deep copy: the
    model's size again in memory while exporting).

    A PeftModel goes through peft's ``merge_and_unload``/``unload``. Adapters injected with
    ``peft.inject_adapter_in_model`` have no such wrapper, so the same walk is done here: each
    peft layer merges itself (``merge()``) and is replaced by its base layer."""
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTunerLayer

    clone = copy.deepcopy(model)
    if isinstance(clone, PeftModel):
        return clone.merge_and_unload() if merge else clone.unload()
    for name, module in list(clone.named_modules()):
        if isinstance(module, BaseTunerLayer):
            if merge:
                module.merge()
            parent, _, child = name.rpartition(".")
            setattr(clone.get_submodule(parent) if parent else clone, child,
                    module.get_base_layer())
    return clone


def save_adapter(model: nn.Module, path: Path, config: Any = None) -> None:
    """The LoRA adapter of ``model`` in peft's format (``adapter_config.json`` +
    ``adapter_model.safetensors``) in ``path``, loadable with
    ``peft.PeftModel.from_pretrained(base, path)`` onto the model without adapters.

    A PeftModel saves itself (``save_pretrained``). For injected adapters (no PeftModel
    around them) ``config`` is their ``peft.LoraConfig`` and the file is written as
    ``save_pretrained`` writes it: the ``lora_`` tensors with the adapter name removed from
    the keys and PeftModel's ``base_model.model.`` prefix added, plus the whole weights of
    ``config.modules_to_save`` (peft has no public call for
    a model that is not wrapped; the round trip is tested in tests/use/test_use_lora.py)."""
    from peft import PeftModel

    path = Path(path)
    if isinstance(model, PeftModel):
        model.save_pretrained(str(path), safe_serialization=True)
        return
    if config is None:
        raise ValueError("save_adapter: injected adapters need their peft.LoraConfig")
    path.mkdir(parents=True, exist_ok=True)
    saved = tuple(f"{name}." for name in config.modules_to_save or ())
    tensors = {  # modules_to_save (a head trained in full) are stored whole, as peft does
        "base_model.model." + name.replace(".default.", "."): param.detach().cpu().contiguous()
        for name, param in model.state_dict().items()
        if "lora_" in name or name.startswith(saved)
    }
    save_file(tensors, str(path / "adapter_model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(str(path))

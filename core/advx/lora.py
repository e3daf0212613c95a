"""LoRA adapters through ``peft`` for the Hugging Face generators (``seq2seq``, ``causal``).

``lora: {r: 8, alpha: 16, dropout: 0.0, target_modules: [q, v]}`` in a generator block wraps
the loaded model in ``peft.get_peft_model``: the base weights are frozen, only the low-rank
adapters (and the generator's value head, which lives beside the model) train, so the
optimizers, the gradient all-reduce of a data-parallel run and the optimizer state cover the
adapters alone. π_ref is then **the same model with the adapter disabled**
(``with model.disable_adapter():``, :class:`AdapterDisabled`), not a second copy of the
weights: :func:`advx.generator_kit.frozen_reference` does this for any generator whose model
is a ``PeftModel``.

π_ref must be the policy *as it is when the reference is taken* (G_0 after SFT, the loaded
policy of ``run --from``), as it is without LoRA. The adapter has usually trained by then (SFT
trains the adapter too), so taking the reference first **folds** the adapter into the base
(:func:`fold_adapter`: base ← base + alpha/r·BA, then B ← 0, in place): the adapter-disabled
model is then exactly the policy at that moment, the adapter restarts at zero for RL, and no
Parameter object changes (the optimizers built earlier keep theirs). Checkpoints hold the
model's whole ``state_dict`` (the folded base and the adapter), so ``--resume`` restores both;
an export of a folded model ships its base (:func:`base_is_folded`).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from advx.errors import ConfigError

__all__ = [
    "AdapterDisabled",
    "LoRAConfig",
    "LoRAKeys",
    "apply_lora",
    "base_is_folded",
    "fold_adapter",
    "inject_lora",
    "is_peft_model",
]


@dataclass
class LoRAConfig:
    """The ``lora:`` block of a generator.

    Attributes:
        r: adapter rank.
        alpha: LoRA scaling numerator (the update is ``alpha / r · B A``).
        dropout: dropout on the adapter's input.
        target_modules: names of the linear modules to adapt (e.g. ``[q, v]`` for T5,
            ``[q_proj, v_proj]`` for Llama); empty = peft's default for the architecture.
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class LoRAKeys:
    """The ``lora`` key generator configs inherit (None = full fine-tuning).

    Attributes:
        lora: a :class:`LoRAConfig` block, or null (default) to train every weight.
    """

    lora: LoRAConfig | None = None


def is_peft_model(model: Any) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "get_base_model")


def apply_lora(model: nn.Module, lora: LoRAConfig | None, task_type: str, where: str) -> Any:
    """``model`` wrapped with a fresh LoRA adapter (``model`` itself when ``lora`` is None).

    ``task_type``: peft's ``SEQ_2_SEQ_LM`` or ``CAUSAL_LM``. A bad block is a ConfigError
    naming ``where.lora.<key>``."""
    if lora is None:
        return model
    if lora.r < 1:
        raise ConfigError(f"{where}.lora.r must be ≥ 1, got {lora.r}")
    if not 0.0 <= lora.dropout < 1.0:
        raise ConfigError(f"{where}.lora.dropout must be in [0, 1), got {lora.dropout}")
    try:
        import peft
    except ImportError:  # pragma: no cover - a declared dependency
        raise ConfigError(f"{where}.lora needs the peft package: pip install peft") from None
    config = peft.LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules) or None, task_type=task_type,
    )
    try:
        return peft.get_peft_model(model, config)
    except ValueError as exc:  # e.g. target modules that the model does not have
        names = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                        if isinstance(m, nn.Linear)})
        raise ConfigError(
            f"{where}.lora.target_modules {list(lora.target_modules)}: {exc}. The model's "
            f"linear modules are named {', '.join(names)}"
        ) from None


# Models whose base absorbed an adapter (fold_adapter). A weak set, not an attribute on the
# model, so a deep copy (a fresh model) does not inherit it and nothing is saved with it.
_FOLDED: weakref.WeakSet[nn.Module] = weakref.WeakSet()


def fold_adapter(model: Any) -> None:
    """Fold a PeftModel's LoRA update into its base weights and restart the adapter at zero,
    in place: afterwards ``model`` computes what it computed before, and so does ``model``
    with the adapter disabled. Used by :func:`advx.generator_kit.frozen_reference` so that
    π_ref (adapter off) is the policy when the reference is taken, not the base before SFT.

    peft's ``merge_adapter`` adds alpha/r·BA to each base weight; zeroing B then makes the
    adapter the identity, and ``unmerge_adapter`` (which subtracts the now-zero update) only
    clears peft's "merged" mark so the adapter trains as usual. The same Parameter objects
    stay in place, so optimizers created before keep working."""
    from peft.tuners.lora import LoraLayer

    with torch.no_grad():
        model.merge_adapter()
        for module in model.modules():
            if isinstance(module, LoraLayer):
                # only the adapters merge_adapter folded (the active ones): zeroing another
                # adapter's B would erase it unmerged. An Embedding's B is a Parameter in
                # lora_embedding_B (not a module in lora_B): left alone, unmerge would take
                # its update back out of the base and π_ref would not be the policy.
                for name in module.merged_adapters:
                    if name in module.lora_B:
                        module.lora_B[name].weight.zero_()
                    if name in module.lora_embedding_B:
                        module.lora_embedding_B[name].zero_()
        model.unmerge_adapter()
    _FOLDED.add(model)


def base_is_folded(model: nn.Module) -> bool:
    """Whether ``model``'s base weights absorbed a trained adapter (:func:`fold_adapter`), so
    they are no longer the recipe's ``model:`` and an export must ship them."""
    return model in _FOLDED


class AdapterDisabled:
    """π_ref of a LoRA generator: its model, called with the adapter switched off.

    Looks like the model to the generator code (``model(...)``, ``generate``, ``config``);
    every call runs inside ``peft_model.disable_adapter()`` so it scores with the base
    weights. ``eval``/``train``/``requires_grad_`` do nothing: the policy owns the module."""

    def __init__(self, peft_model: Any) -> None:
        self._model = peft_model

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._model.disable_adapter():
            return self._model(*args, **kwargs)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        with self._model.disable_adapter():
            return self._model.generate(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self(*args, **kwargs)

    def eval(self) -> AdapterDisabled:
        return self

    def train(self, mode: bool = True) -> AdapterDisabled:
        return self

    def requires_grad_(self, requires_grad: bool = True) -> AdapterDisabled:
        return self

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_model":  # copy/pickle probes before __init__
            raise AttributeError(name)
        return getattr(self._model, name)


def inject_lora(model: nn.Module, lora: LoRAConfig | None, where: str,
                keep_trainable: tuple[str, ...] = ()) -> nn.Module:
    """LoRA adapters injected into ``model`` in place (``peft.inject_adapter_in_model``), for
    models that are not Hugging Face task models (the encoder classifier): every weight is
    then frozen except the adapters and the submodules named in ``keep_trainable`` (a
    freshly initialised classification head must train). Returns ``model``."""
    if lora is None:
        return model
    if not lora.target_modules:
        raise ConfigError(f"{where}.lora.target_modules: name the linear modules to adapt "
                          "(e.g. [q, v] for a T5 encoder, [query, value] for BERT/MiniLM)")
    if lora.r < 1:
        raise ConfigError(f"{where}.lora.r must be ≥ 1, got {lora.r}")
    import peft

    config = peft.LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                             target_modules=list(lora.target_modules))
    try:
        peft.inject_adapter_in_model(config, model)
    except ValueError as exc:
        names = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                        if isinstance(m, nn.Linear)})
        raise ConfigError(
            f"{where}.lora.target_modules {list(lora.target_modules)}: {exc}. The model's "
            f"linear modules are named {', '.join(names)}"
        ) from None
    for name, param in model.named_parameters():
        parts = name.split(".")
        param.requires_grad_("lora_" in name or any(p in keep_trainable for p in parts))
    return model

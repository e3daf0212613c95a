"""advx.lora.fold_adapter: after the fold the adapter-off model (π_ref) is the policy, for
every kind of LoRA layer, and adapters that were not merged are left as they are."""

from __future__ import annotations

import peft
import pytest
import torch
from advx.lora import fold_adapter
from torch import nn


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.lin = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.emb(x))


def _trained(targets: list[str]) -> nn.Module:
    torch.manual_seed(0)
    model = peft.get_peft_model(_Tiny(), peft.LoraConfig(r=2, lora_alpha=4,
                                                         target_modules=targets))
    for name, p in model.named_parameters():
        if "lora_" in name:  # a trained adapter: B no longer zero
            nn.init.normal_(p)
    return model


@pytest.mark.parametrize("targets", [["lin"], ["emb", "lin"]])
def test_fold_makes_adapter_off_the_policy(targets: list[str]) -> None:
    model, x = _trained(targets), torch.arange(10)
    before = model(x).detach()
    fold_adapter(model)
    assert torch.allclose(model(x), before, atol=1e-5)
    with model.disable_adapter():
        assert torch.allclose(model(x), before, atol=1e-5)  # was the pre-fold base for emb
    fold_adapter(model)  # twice: nothing left to fold, nothing changes
    assert torch.allclose(model(x), before, atol=1e-5)


def test_fold_leaves_inactive_adapters() -> None:
    model = _trained(["lin"])
    model.add_adapter("other", peft.LoraConfig(r=2, lora_alpha=4, target_modules=["lin"]))
    other = model.base_model.model.lin.lora_B["other"].weight
    nn.init.normal_(other)
    saved = other.detach().clone()
    fold_adapter(model)  # folds the active "default" only
    assert torch.equal(other, saved)

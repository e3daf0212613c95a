"""``advx.numerics.adamw``: torch's fused AdamW where the device has the kernel, the same
update as the default implementation (the optimizer every rank steps in full, see
docs/scaling.md)."""

from __future__ import annotations

import copy

import torch
from advx.numerics import adamw


def _trained(optimizer_of, steps: int = 3) -> tuple[list[torch.Tensor], torch.optim.Optimizer]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    head = list(net[2].parameters())
    groups = [{"params": list(net[0].parameters())}, {"params": head, "lr": 1e-2}]
    optimizer = optimizer_of(groups)
    data = torch.randn(5, 6)
    for _ in range(steps):
        optimizer.zero_grad()
        net(data).square().mean().backward()
        optimizer.step()
    return [p.detach().clone() for p in net.parameters()], optimizer


def test_adamw_is_fused_on_cpu_and_steps_like_the_default() -> None:
    fused, optimizer = _trained(lambda g: adamw(g, lr=1e-3, weight_decay=0.01))
    default, _ = _trained(lambda g: torch.optim.AdamW(g, lr=1e-3, weight_decay=0.01))
    assert all(group["fused"] for group in optimizer.param_groups)
    assert optimizer.param_groups[1]["lr"] == 1e-2  # the group's own learning rate is kept
    for a, b in zip(fused, default, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_adamw_keeps_an_explicit_foreach_and_accepts_a_generator() -> None:
    params = (torch.nn.Parameter(torch.zeros(2)) for _ in range(2))
    optimizer = adamw(params, lr=1e-3, foreach=True)
    assert not optimizer.param_groups[0]["fused"]
    assert len(optimizer.param_groups[0]["params"]) == 2


def test_adamw_resumes_a_default_adamw_checkpoint_fused() -> None:
    """An older run's checkpoint (torch's default AdamW: ``fused: None`` in its groups) keeps
    the fused kernel after ``load_state_dict`` and continues the same AdamW."""
    _, default = _trained(lambda g: torch.optim.AdamW(g, lr=1e-3, weight_decay=0.01), steps=2)
    saved = copy.deepcopy(default.state_dict())
    assert saved["param_groups"][0]["fused"] is None

    def resumed(optimizer_of):
        def make(groups):
            optimizer = optimizer_of(groups)
            optimizer.load_state_dict(copy.deepcopy(saved))
            return optimizer
        return make

    fused, optimizer = _trained(resumed(lambda g: adamw(g, lr=1e-3, weight_decay=0.01)))
    default_weights, _ = _trained(resumed(lambda g: torch.optim.AdamW(g, lr=1e-3,
                                                                      weight_decay=0.01)))
    assert all(group["fused"] for group in optimizer.param_groups)
    assert optimizer.param_groups[1]["lr"] == 1e-2
    for a, b in zip(fused, default_weights, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_adamw_takes_a_single_tensor_as_a_group_s_params() -> None:
    weight = torch.nn.Parameter(torch.zeros(2, 3))
    optimizer = adamw([{"params": weight}], lr=1e-3)  # as torch.optim.AdamW takes it
    assert optimizer.param_groups[0]["params"] == [weight]

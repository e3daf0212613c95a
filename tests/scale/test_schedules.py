"""Learning-rate schedules (advx.schedules) in the RL optimizers and the supervised loops."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from advx.errors import ConfigError
from advx.schedules import make_scheduler, rl_total_steps
from advx_grpo.grpo import GRPOConfig, GRPOOptimizer
from advx_ppo.ppo import PPO, PPOConfig
from advx_reinforce.reinforce import Reinforce, ReinforceConfig


def _param() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.zeros(3))


def _lr(optimizer: torch.optim.Optimizer) -> float:
    return optimizer.param_groups[0]["lr"]


def test_linear_warmup_then_decay_follows_transformers() -> None:
    opt = torch.optim.SGD([_param()], lr=1.0)
    cfg = PPOConfig(lr=1.0, lr_scheduler="linear", warmup_steps=2)
    sched = make_scheduler(opt, cfg, total_steps=6, where="optimizer")
    lrs = []
    for _ in range(6):
        lrs.append(_lr(opt))
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.0, 0.5, 1.0, 0.75, 0.5, 0.25])


def test_warmup_ratio_and_constant_becomes_constant_with_warmup() -> None:
    opt = torch.optim.SGD([_param()], lr=2.0)
    cfg = PPOConfig(lr=2.0, warmup_ratio=0.25)
    sched = make_scheduler(opt, cfg, total_steps=8, where="optimizer")  # warmup 2
    seen = []
    for _ in range(4):
        seen.append(_lr(opt))
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.0, 1.0, 2.0, 2.0])


def test_default_is_constant_and_needs_no_total() -> None:
    opt = torch.optim.SGD([_param()], lr=0.1)
    sched = make_scheduler(opt, PPOConfig(lr=0.1), total_steps=None, where="optimizer")
    for _ in range(3):
        opt.step()
        sched.step()
    assert _lr(opt) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"lr_scheduler": "cosin"}, "Did you mean 'cosine'"),
        ({"warmup_steps": 2, "warmup_ratio": 0.1}, "not both"),
        ({"warmup_ratio": 1.5}, "warmup_ratio"),
        ({"warmup_steps": -1}, "warmup_steps"),
    ],
)
def test_bad_schedule_keys_are_config_errors(keys: dict, message: str) -> None:
    opt = torch.optim.SGD([_param()], lr=0.1)
    with pytest.raises(ConfigError, match=message):
        make_scheduler(opt, PPOConfig(**keys), total_steps=10, where="optimizer")


def test_decaying_schedule_without_a_total_names_schedule_steps() -> None:
    opt = torch.optim.SGD([_param()], lr=0.1)
    with pytest.raises(ConfigError, match="schedule_steps"):
        make_scheduler(opt, PPOConfig(lr_scheduler="cosine"), total_steps=None, where="optimizer")
    sched = make_scheduler(opt, PPOConfig(lr_scheduler="cosine", schedule_steps=4),
                           total_steps=None, where="optimizer")
    assert sched is not None


def test_rl_total_is_rounds_times_rl_steps() -> None:
    assert rl_total_steps(SimpleNamespace(loop=SimpleNamespace(rounds=3, rl_steps=5))) == 15
    assert rl_total_steps(SimpleNamespace()) is None


def _advance(opt_obj, steps: int) -> None:
    for _ in range(steps):
        opt_obj.scheduler.optimizer.step()
        opt_obj.scheduler.step()


@pytest.mark.parametrize("kind", ["ppo", "grpo", "reinforce"])
def test_schedule_state_is_checkpointed_and_restored(kind: str) -> None:
    keys = {"lr": 1.0, "lr_scheduler": "cosine", "warmup_steps": 2}

    def make():
        if kind == "ppo":
            return PPO(PPOConfig(**keys), [_param()], total_steps=10)
        if kind == "grpo":
            return GRPOOptimizer(GRPOConfig(**keys), torch.nn.Linear(2, 2), total_steps=10)
        return Reinforce(ReinforceConfig(**keys), [_param()], total_steps=10)

    first = make()
    _advance(first, 5)
    expected = first.scheduler.get_last_lr()[0]
    assert 0.0 < expected < 1.0
    resumed = make()
    resumed.load_state_dict(first.state_dict())
    optimizer = resumed.scheduler.optimizer
    assert _lr(optimizer) == pytest.approx(expected)
    _advance(first, 1)
    _advance(resumed, 1)
    assert _lr(optimizer) == pytest.approx(_lr(first.scheduler.optimizer))
    assert not math.isclose(_lr(optimizer), expected)


def test_checkpoint_without_schedule_state_still_loads() -> None:
    ppo = PPO(PPOConfig(lr=0.5), [_param()])
    state = ppo.state_dict()
    del state["scheduler"]
    ppo.load_state_dict(state)
    assert _lr(ppo.optimizer) == pytest.approx(0.5)


def test_sft_loop_runs_its_schedule_per_call() -> None:
    from advx.generator_kit import SFTLoop
    from advx.rollout import Sample

    model = torch.nn.Linear(2, 1)
    cfg = SimpleNamespace(lr=1.0, epochs=2, batch_size=2, max_grad_norm=0.0,
                          lr_scheduler="linear", warmup_steps=0, warmup_ratio=0.0,
                          schedule_steps=0)
    loop = SFTLoop.from_config("toy", model, cfg, optimizer=torch.optim.SGD)
    seen: list[float] = []

    def batch_loss(batch):
        seen.append(loop.optimizer.param_groups[0]["lr"])
        return model(torch.ones(len(batch), 2)).sum() * 0.0 + model.weight.sum(), 1

    loop.run([Sample(text="x")] * 4, batch_loss)  # 2 epochs × 2 minibatches
    assert seen == pytest.approx([1.0, 0.75, 0.5, 0.25])
    seen.clear()
    loop.run([Sample(text="x")] * 4, batch_loss)  # a new call: the schedule starts again
    assert seen[0] == pytest.approx(1.0)


def test_sft_loop_rejects_a_bad_schedule_at_build() -> None:
    from advx.generator_kit import SFTLoop

    cfg = SimpleNamespace(lr=1.0, epochs=1, batch_size=2, max_grad_norm=0.0,
                          lr_scheduler="cosinus", warmup_steps=0, warmup_ratio=0.0,
                          schedule_steps=0)
    with pytest.raises(ConfigError, match=r"generator\.lr_scheduler"):
        SFTLoop.from_config("toy", torch.nn.Linear(2, 1), cfg)

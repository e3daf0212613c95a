"""Mixed precision (the recipe's ``precision`` key, advx.accel) on CPU."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from advx.accel import Precision, make_accelerator, parse_precision, prepare_component
from advx.components import StepContext
from advx.errors import ConfigError
from advx.recipe import validate_recipe
from advx.rollout import Rewards
from advx_ppo.ppo import PPO, PPOConfig
from ppo_toy import ToyTask, make_generator


def test_precision_is_validated() -> None:
    assert parse_precision("bf16") is Precision.bf16
    with pytest.raises(ConfigError, match="precision: expected one of fp32, bf16, fp16"):
        parse_precision("half")


def test_fp16_on_cpu_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        make_accelerator(Precision.fp16, "cpu")


def test_fp32_builds_no_accelerator() -> None:
    assert make_accelerator(Precision.fp32, "cpu") is None


def test_recipe_key_round_trips(tmp_path) -> None:
    from advx.plugins import get_registry
    from omegaconf import OmegaConf

    registry = get_registry()
    base = {"name": "r", "task": {"name": "product_relevance", "preset": "demo"}}
    plain = validate_recipe(OmegaConf.create(base), registry)
    assert plain.precision == "fp32" and "precision" not in plain.resolved
    bf16 = validate_recipe(OmegaConf.create({**base, "precision": "bf16"}), registry)
    assert bf16.precision == "bf16" and bf16.resolved["precision"] == "bf16"
    with pytest.raises(ConfigError, match="precision"):
        validate_recipe(OmegaConf.create({**base, "precision": "fp8"}), registry)


def test_bf16_on_cpu_autocasts_the_model_and_keeps_log_probs_and_losses_fp32(tmp_path) -> None:
    task = ToyTask()
    generator = make_generator(tmp_path, task, epochs=1)
    accelerator = make_accelerator(Precision.bf16, "cpu")
    prepare_component(accelerator, generator)
    inner: list[torch.dtype] = []
    linear = next(m for m in generator.model.modules() if isinstance(m, torch.nn.Linear))
    hook = linear.register_forward_hook(lambda m, i, o: inner.append(o.dtype))
    rng = np.random.default_rng(0)
    rollout = generator.sample(task.rl_prompts(4, rng), temperature=1.0)
    out = generator.policy_outputs(rollout)
    hook.remove()
    assert torch.bfloat16 in inner  # the matmuls ran in bf16 ...
    assert out.logprobs.dtype == torch.float32  # ... what comes out of the model is fp32
    assert rollout.logprobs.dtype == torch.float32
    before = copy.deepcopy([p.detach().clone() for p in generator.model.parameters()])
    ppo = PPO(PPOConfig(epochs=1, vf_coef=0.0), generator.parameters())
    rewards = Rewards.at_end(torch.linspace(0.0, 1.0, rollout.batch_size), rollout)
    ctx = StepContext(task=task, generator=generator, classifier=None, reference=None,
                      round=1, step=0, rng=rng)
    metrics = ppo.update(rollout, rewards, ctx)
    assert np.isfinite(metrics["ppo/loss/total"])
    after = list(generator.model.parameters())
    assert all(p.dtype == torch.float32 for p in after)  # weights stay fp32 (autocast only)
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    # the reference is a deep copy of the prepared model: it autocasts its own weights
    reference = generator.reference()
    assert reference.model is not generator.model
    assert reference.model.forward.__self__ is reference.model


@pytest.fixture
def cpu_scaler(monkeypatch):
    """The fp16 path's loss scaler, on CPU (accelerate only makes one for CUDA fp16)."""
    import advx.accel

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    monkeypatch.setattr(advx.accel, "_SCALER", scaler)
    return scaler


def test_fp16_loss_scaling_steps_with_the_unscaled_gradient(cpu_scaler) -> None:
    from advx.accel import backward
    from advx.numerics import guarded_step

    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    loss = (weight**2).sum()
    backward(loss)  # scaled by 2**10 on the way
    norm = guarded_step(optimizer, [weight], loss=loss, max_norm=None, what="t")
    assert norm == pytest.approx(float(torch.tensor([2.0, -4.0]).norm()))  # the true gradient
    assert weight.detach().tolist() == pytest.approx([0.8, -1.6])


def test_fp16_overflow_skips_the_step_and_lowers_the_scale(cpu_scaler) -> None:
    from advx.accel import backward
    from advx.numerics import guarded_step

    weight = torch.nn.Parameter(torch.tensor([1.0, 1.0e-38]))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    loss = (weight * torch.tensor([1.0, 3.0e38])).sum()  # loss 4; the scaled gradient overflows
    backward(loss)
    guarded_step(optimizer, [weight], loss=loss, max_norm=1.0, what="t")  # no NonFiniteError
    assert weight.detach().tolist() == pytest.approx([1.0, 1.0e-38])  # skipped
    assert cpu_scaler.get_scale() < 2.0**10  # and the scale went down

"""Gradient checkpointing (advx.memory): layers recomputed in eval-mode updates, same gradient."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from advx.errors import ConfigError
from advx.memory import enable_gradient_checkpointing
from ppo_toy import ToyTask, make_generator


def _count_checkpoints(model: torch.nn.Module) -> list[int]:
    calls = [0]
    from transformers.modeling_layers import GradientCheckpointingLayer

    for layer in model.modules():
        if isinstance(layer, GradientCheckpointingLayer):
            inner = layer._gradient_checkpointing_func

            def counted(*args, _inner=inner, **kwargs):
                calls[0] += 1
                return _inner(*args, **kwargs)

            layer._gradient_checkpointing_func = counted
    return calls


def test_seq2seq_checkpoints_its_layers_in_eval_mode_with_the_same_gradient(tmp_path) -> None:
    task = ToyTask()
    plain = make_generator(tmp_path / "a", task, epochs=1)
    ckpt = make_generator(tmp_path / "b", task, epochs=1, gradient_checkpointing=True)
    ckpt.model.load_state_dict(plain.model.state_dict())
    ckpt.value_head.load_state_dict(plain.value_head.state_dict())
    calls = _count_checkpoints(ckpt.model)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    rollout = ckpt.sample(task.rl_prompts(4, rng), temperature=1.0)
    assert calls[0] == 0  # sampling has no gradients: the KV-cached path as before
    assert not ckpt.model.training
    grads = []
    for generator in (plain, ckpt):
        generator.model.zero_grad()
        out = generator.policy_outputs(rollout)
        (out.logprobs.sum() + out.values.sum()).backward()
        grads.append([p.grad.clone() for p in generator.model.parameters()
                      if p.grad is not None])
    assert calls[0] > 0  # the teacher-forced pass with gradients was checkpointed
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        ckpt.policy_outputs(rollout)
    assert not any(m.training for m in ckpt.model.modules())  # eval everywhere after


def test_a_model_without_transformer_layers_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="gradient_checkpointing"):
        enable_gradient_checkpointing(copy.deepcopy(torch.nn.Linear(2, 2)), "classifier")


def test_encoder_classifier_layers_are_checkpointed() -> None:
    from advx_encoder_classifier.model import T5EncoderClassifier

    net = T5EncoderClassifier.tiny(50, 2, 16, 2, 2, 32, 0.0)
    assert enable_gradient_checkpointing(net, "classifier") == 2

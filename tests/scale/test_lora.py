"""LoRA through peft (advx.lora): only the adapter and the value head train; π_ref is the base."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from advx.components import StepContext
from advx.errors import ConfigError
from advx.lora import AdapterDisabled, LoRAConfig, base_is_folded
from advx.rollout import Rewards
from advx_ppo.ppo import PPO, PPOConfig
from ppo_toy import ToyTask, make_generator

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def lora_generator(tmp_path_factory):
    task = ToyTask()
    lora = LoRAConfig(r=4, alpha=8, target_modules=["q", "v"])
    return task, make_generator(tmp_path_factory.mktemp("lora"), task, epochs=1, lora=lora)


def test_only_the_adapter_and_the_value_head_train(lora_generator) -> None:
    _, generator = lora_generator
    trainable = [p for p in generator.parameters() if p.requires_grad]
    head = {id(p) for p in generator.value_head.parameters()}
    names = [n for n, p in generator.model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert head <= {id(p) for p in trainable}
    total = sum(p.numel() for p in generator.model.parameters())
    assert sum(p.numel() for p in trainable) < total / 5


def test_reference_is_the_base_model_not_a_copy_and_training_moves_only_the_adapter(
        lora_generator) -> None:
    task, generator = lora_generator
    generator = copy.deepcopy(generator)
    reference = generator.reference()
    assert isinstance(reference.model, AdapterDisabled)
    assert reference.model._model is generator.model  # the policy's own weights, adapter off
    base = copy.deepcopy(generator.model.get_base_model())  # the frozen weights, as loaded
    frozen = {n: p.detach().clone() for n, p in generator.model.named_parameters()
              if not p.requires_grad}
    rng = np.random.default_rng(0)
    rollout = generator.sample(task.rl_prompts(4, rng), temperature=1.0)
    # LoRA B starts at zero: train it away from zero so the policy differs from the base
    ppo = PPO(PPOConfig(epochs=2, lr=5e-2, vf_coef=0.5), generator.parameters(),
              generator.value_parameters())
    rewards = Rewards.at_end(torch.linspace(-1.0, 1.0, rollout.batch_size), rollout)
    ctx = StepContext(task=task, generator=generator, classifier=None, reference=reference,
                      round=1, step=0, rng=rng)
    ppo.update(rollout, rewards, ctx)
    for name, param in generator.model.named_parameters():
        if name in frozen:
            assert torch.equal(param, frozen[name]), name
    with torch.no_grad():
        ref = reference.policy_outputs(rollout).logprobs
        policy = generator.policy_outputs(rollout).logprobs
        generator_base = copy.copy(generator)
        generator_base.model, generator_base.value_head = base, None
        expected = generator_base.policy_outputs(rollout).logprobs
    torch.testing.assert_close(ref, expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(policy, ref)  # the adapter did move the policy


def test_reference_after_sft_is_the_fine_tuned_policy_not_the_pre_sft_base(
        lora_generator) -> None:
    task, generator = lora_generator
    generator = copy.deepcopy(generator)
    with torch.no_grad():  # an adapter that SFT has trained (B away from its zero init)
        for name, p in generator.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.3)
    params = [id(p) for p in generator.parameters()]
    rollout = generator.sample(task.rl_prompts(4, np.random.default_rng(1)), temperature=1.0)
    with torch.no_grad():
        tuned = generator.policy_outputs(rollout).logprobs
        with generator.model.disable_adapter():
            pre_sft = generator.policy_outputs(rollout).logprobs
    assert not torch.allclose(tuned, pre_sft)  # the adapter matters
    reference = generator.reference()
    with torch.no_grad():
        ref = reference.policy_outputs(rollout).logprobs
        policy = generator.policy_outputs(rollout).logprobs
    torch.testing.assert_close(ref, tuned, atol=1e-5, rtol=1e-5)  # π_ref = G_0 after SFT
    torch.testing.assert_close(policy, tuned, atol=1e-5, rtol=1e-5)  # the policy unchanged
    assert all(not p.any() for n, p in generator.model.named_parameters() if "lora_B" in n)
    assert [id(p) for p in generator.parameters()] == params  # optimizers keep their tensors
    assert base_is_folded(generator.model)


def test_checkpoint_holds_the_adapter(lora_generator, tmp_path) -> None:
    task, generator = lora_generator
    trained = copy.deepcopy(generator)
    with torch.no_grad():
        for name, p in trained.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)
    fresh = make_generator(tmp_path, task, epochs=1,
                           lora=LoRAConfig(r=4, alpha=8, target_modules=["q", "v"]))
    fresh.load_state_dict(trained.state_dict())
    for (name, a), (_, b) in zip(trained.model.named_parameters(),
                                 fresh.model.named_parameters(), strict=True):
        assert torch.equal(a, b), name


def test_unknown_target_module_names_the_real_ones(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"lora\.target_modules"):
        make_generator(tmp_path, ToyTask(), lora=LoRAConfig(target_modules=["q_proj"]))


def test_encoder_classifier_lora_trains_the_adapters_and_the_head_only(tmp_path) -> None:
    from advx.components import BuildContext
    from advx_encoder_classifier.classifier import (
        EncoderClassifierConfig,
        build_encoder_classifier,
    )

    task = ToyTask()
    config = EncoderClassifierConfig(epochs=2, lr=5e-2,
                                     lora=LoRAConfig(r=2, target_modules=["q", "v"]))
    classifier = build_encoder_classifier(
        config, BuildContext(run_dir=tmp_path, seed=0, device="cpu", task=task))
    before = {n: p.detach().clone() for n, p in classifier.net.named_parameters()}
    trainable = {n for n, p in classifier.net.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    assert any(n.startswith("head.") for n in trainable)
    classifier.fit(task.classifier_train())
    for name, param in classifier.net.named_parameters():
        if name not in trainable:
            assert torch.equal(param, before[name]), name
    assert any(not torch.equal(p, before[n]) for n, p in classifier.net.named_parameters()
               if n in trainable)


def test_encoder_classifier_lora_needs_target_modules(tmp_path) -> None:
    from advx.components import BuildContext
    from advx_encoder_classifier.classifier import (
        EncoderClassifierConfig,
        build_encoder_classifier,
    )

    with pytest.raises(ConfigError, match=r"classifier\.lora\.target_modules"):
        build_encoder_classifier(EncoderClassifierConfig(lora=LoRAConfig()),
                                 BuildContext(run_dir=tmp_path, seed=0, device="cpu",
                                              task=ToyTask()))

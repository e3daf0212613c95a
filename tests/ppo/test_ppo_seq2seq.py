"""The seq2seq generator: sampling masks, teacher-forced log-probs, MC completion, save/load."""

from __future__ import annotations

import copy

import pytest
import torch
from advx.components import Generator
from advx.rollout import Prompt, Sample
from ppo_toy import make_generator


def test_satisfies_the_generator_protocol(sft_generator):
    assert isinstance(sft_generator, Generator)


def test_sft_lowers_the_nll(tmp_path, toy_task):
    generator = make_generator(tmp_path, toy_task, epochs=10)
    data = toy_task.generator_train()
    before = generator.nll(data).total.mean().item()
    metrics = generator.sft(data)
    after = generator.nll(data).total.mean().item()
    assert after < before - 1.0
    assert metrics["sft/loss"] > 0


def test_nll_is_summed_per_example_with_grad(sft_generator):
    data = [Sample("mens wallet", Prompt("a")), Sample("mens wallet mens wallet", Prompt("a"))]
    nll = sft_generator.nll(data).total
    assert nll.shape == (2,) and nll.requires_grad
    assert nll[1] > nll[0]  # twice the tokens, summed rather than averaged


def test_sample_shapes_masks_and_groups(sft_generator, toy_task):
    prompts = toy_task.augment_prompts(0)
    rollout = sft_generator.sample(prompts, n=3)
    B, T = rollout.response_ids.shape
    assert len(prompts) * 3 == B
    assert rollout.group_ids.tolist() == [i // 3 for i in range(B)]
    assert [p.text for p in rollout.prompts] == [p.text for p in prompts for _ in range(3)]
    assert sft_generator.config.max_new_tokens >= T
    eos, pad = sft_generator.eos_id, sft_generator.pad_id
    for ids, mask in zip(rollout.response_ids, rollout.response_mask, strict=True):
        n = int(mask.sum())
        assert mask[:n].all() and not mask[n:].any()  # a prefix of ones
        assert (ids[n:] == pad).all()  # padding after the response
        if eos in ids[:n].tolist():
            assert ids[n - 1] == eos and eos not in ids[: n - 1].tolist()  # EOS included, last
        else:
            assert n == T  # truncated at max_new_tokens
    assert (rollout.logprobs[rollout.response_mask == 0] == 0).all()
    assert (rollout.logprobs[rollout.response_mask == 1] < 0).all()
    assert rollout.values is not None and rollout.values.shape == (B, T)
    assert len(rollout.texts) == B


def test_policy_outputs_match_behaviour_logprobs(sft_generator, toy_task):
    rollout = sft_generator.sample(toy_task.augment_prompts(0), n=2, temperature=1.0)
    out = sft_generator.policy_outputs(rollout)
    assert out.logprobs.requires_grad and out.values is not None and out.values.requires_grad
    torch.testing.assert_close(out.logprobs.detach(), rollout.logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.values.detach(), rollout.values, atol=1e-5, rtol=0)
    mask = rollout.response_mask.bool()
    assert (out.entropy[mask] > 0).all() and (out.entropy[~mask] == 0).all()


def test_reference_is_frozen_and_independent(sft_generator, toy_task):
    policy = copy.deepcopy(sft_generator)
    reference = policy.reference()
    assert reference is policy.reference()  # taken once
    assert not any(p.requires_grad for p in reference.model.parameters())
    rollout = policy.sample(toy_task.augment_prompts(0), n=1)
    before = reference.policy_outputs(rollout).logprobs
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.1)
    after = reference.policy_outputs(rollout).logprobs
    torch.testing.assert_close(before, after)
    assert not torch.allclose(policy.policy_outputs(rollout).logprobs.detach(), before)


def test_complete_keeps_each_prefix_and_scores_it(sft_generator, toy_task):
    rollout = sft_generator.sample(toy_task.augment_prompts(0), n=2)
    T = rollout.response_ids.shape[1]
    rows = torch.arange(rollout.batch_size).repeat_interleave(T)
    lengths = torch.arange(T).repeat(rollout.batch_size)
    done = sft_generator.complete(rollout, rows, lengths)
    assert done.batch_size == len(rows)
    assert done.group_ids.tolist() == rows.tolist()
    for m, (row, k) in enumerate(zip(rows.tolist(), lengths.tolist(), strict=True)):
        k = min(k, int(rollout.lengths[row]))  # a prefix past EOS is the whole response
        assert done.response_ids[m, :k].tolist() == rollout.response_ids[row, :k].tolist()
        # the forced prefix is scored under the policy, not under the forcing
        torch.testing.assert_close(
            done.logprobs[m, :k], rollout.logprobs[row, :k], atol=1e-4, rtol=0
        )
    full = lengths >= rollout.lengths[rows]
    for m in full.nonzero().flatten().tolist():
        assert done.texts[m] == rollout.texts[rows[m]]


def test_complete_samples_fresh_suffixes(sft_generator, toy_task):
    rollout = sft_generator.sample(toy_task.augment_prompts(0)[:1], n=1, temperature=1.5)
    rows = torch.zeros(64, dtype=torch.long)
    done = sft_generator.complete(rollout, rows, torch.zeros(64, dtype=torch.long))
    assert len(set(done.texts)) > 1


def test_save_then_load_offline(tmp_path, sft_generator, toy_task):
    sft_generator.save(tmp_path / "model")
    loaded = make_generator(tmp_path / "run2", None, model=str(tmp_path / "model"))
    rollout = sft_generator.sample(toy_task.augment_prompts(0), n=1)
    torch.testing.assert_close(
        loaded.policy_outputs(rollout).logprobs, sft_generator.policy_outputs(rollout).logprobs
    )
    torch.testing.assert_close(
        loaded.policy_outputs(rollout).values, sft_generator.policy_outputs(rollout).values
    )
    assert (
        loaded.tokenizer("mens wallet").input_ids
        == sft_generator.tokenizer("mens wallet").input_ids
    )


def test_tiny_reloads_from_the_run_dir(tmp_path, toy_task):
    first = make_generator(tmp_path, toy_task)
    assert (tmp_path / "generator-tiny" / "config.json").exists()
    again = make_generator(tmp_path, None)  # no task needed: tokenizer is in the run dir
    for a, b in zip(first.parameters(), again.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_state_dict_roundtrip(tmp_path, sft_generator, toy_task):
    fresh = make_generator(tmp_path, toy_task)
    fresh.load_state_dict(sft_generator.state_dict())
    rollout = sft_generator.sample(toy_task.augment_prompts(0), n=1)
    torch.testing.assert_close(
        fresh.policy_outputs(rollout).logprobs, sft_generator.policy_outputs(rollout).logprobs
    )


def test_bad_template_names_the_key(tmp_path, toy_task):
    from advx.errors import ConfigError

    generator = make_generator(tmp_path, toy_task, prompt_template="{text} {brand}")
    with pytest.raises(ConfigError, match="brand"):
        generator.sample(toy_task.augment_prompts(0))


def test_complete_scores_in_chunks_beyond_512_rows(sft_generator, toy_task):
    rollout = sft_generator.sample(toy_task.augment_prompts(0), n=2)  # 8 rows
    rows = torch.arange(8).repeat(80)  # M = 640 > SCORE_CHUNK_ROWS
    lengths = torch.full((640,), 2)
    done = sft_generator.complete(rollout, rows, lengths)
    k = torch.minimum(rollout.lengths[rows], lengths)
    for m in (0, 511, 512, 639):
        n = int(k[m])
        assert done.response_ids[m, :n].tolist() == rollout.response_ids[rows[m], :n].tolist()
    # scoring in chunks equals scoring the rows directly
    direct = sft_generator.policy_outputs(done.select(torch.arange(600, 640))).logprobs.detach()
    torch.testing.assert_close(done.logprobs[600:640], direct, atol=1e-5, rtol=0)


def test_unloadable_model_is_a_config_error(tmp_path):
    from advx.errors import ConfigError

    with pytest.raises(ConfigError, match=r"generator\.model"):
        make_generator(tmp_path, None, model=str(tmp_path / "no-such-model"))


def test_n_samples_encode_each_prompt_once(sft_generator, toy_task):
    """GRPO-style groups: the encoder sees each prompt once, however many samples it gets;
    every sample's rollout row still carries its prompt's ids."""
    prompts = toy_task.augment_prompts(0)[:2]
    encoder = sft_generator.model.get_encoder()
    seen: list[int] = []
    hook = encoder.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs["input_ids"].shape[0]), with_kwargs=True)
    try:
        rollout = sft_generator.sample(prompts, n=4)
    finally:
        hook.remove()
    # generate's encoder pass: 2 prompts, not 8 rows (then the teacher-forced scoring of the
    # 8 rows, which needs each row's encoding under gradients in PPO anyway)
    assert seen[0] == 2
    ids, _ = sft_generator._encode_prompts(prompts)
    assert torch.equal(rollout.prompt_ids, ids.repeat_interleave(4, 0))
    assert rollout.group_ids.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]

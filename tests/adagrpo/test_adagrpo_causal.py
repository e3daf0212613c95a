"""Generator ``causal``: shapes, left-padded prompts, log-probs, nll/sft, beam search, complete."""

from __future__ import annotations

import pytest
import torch
from adagrpo_kit import tiny_causal
from advx import Generator, Prompt, Sample
from advx.lora import LoRAConfig

PROMPTS = [Prompt("a1"), Prompt("a2 a3 a4 b5 b6")]


def test_protocol_and_sample_shapes():
    gen = tiny_causal(0)
    assert isinstance(gen, Generator)
    rollout = gen.sample(PROMPTS, n=3)
    B, T = 6, rollout.response_ids.shape[1]
    assert rollout.prompt_ids.shape[0] == B and gen.config.max_new_tokens >= T
    for name in ("response_mask", "logprobs"):
        assert getattr(rollout, name).shape == (B, T)
    assert rollout.group_ids.tolist() == [0, 0, 0, 1, 1, 1]
    assert [p.text for p in rollout.prompts] == ["a1"] * 3 + ["a2 a3 a4 b5 b6"] * 3
    # left padding: every prompt ends at the last column, with the separator
    assert (rollout.prompt_mask[:, -1] == 1).all()
    assert (rollout.prompt_ids[:, -1] == gen.sep_id).all()
    assert rollout.prompt_mask[0].sum() == 2 and rollout.prompt_mask[0, 0] == 0
    # the mask covers tokens up to and including the first EOS; padding after it
    for ids, mask in zip(rollout.response_ids, rollout.response_mask, strict=True):
        n = int(mask.sum())
        assert mask[:n].all() and not mask[n:].any()
        assert (ids[n:] == gen.pad_id).all()
        assert gen.eos_id not in ids[: n - 1].tolist()
    assert len(rollout.texts) == B


def test_teacher_forced_logprobs_match_generate_scores():
    gen = tiny_causal(1)
    ids, mask = gen.encode_prompts(PROMPTS)
    out = gen.model.generate(input_ids=ids, attention_mask=mask, do_sample=True, top_k=0,
                             max_new_tokens=4, output_logits=True, return_dict_in_generate=True,
                             pad_token_id=gen.pad_id, eos_token_id=gen.eos_id)
    response = out.sequences[:, ids.shape[1]:]
    from_generate = torch.stack(out.logits, 1).log_softmax(-1).gather(-1, response[..., None])
    rollout = gen._rollout(list(PROMPTS), ids, mask, response, torch.arange(2))
    diff = (from_generate[..., 0] - rollout.logprobs) * rollout.response_mask
    assert diff.abs().max() < 1e-4  # position ids from the mask, as generate computes them
    outputs = gen.policy_outputs(rollout)
    assert outputs.logprobs.requires_grad and outputs.entropy.shape == rollout.logprobs.shape


def test_nll_sft_and_reference():
    gen = tiny_causal(2, epochs=15, lr=1e-2, batch_size=4)
    ref = gen.reference()
    data = [Sample("b1 b2", Prompt("a1")), Sample("b3", Prompt("a2 a3"))]
    before = gen.nll(data).total
    assert before.shape == (2,) and before.requires_grad
    gen.sft(data * 4)
    after = gen.nll(data).total.detach()
    assert (after < before.detach()).all()
    torch.testing.assert_close(ref.nll(data).total.detach(), before.detach())  # frozen copy
    top = gen.beam_search([Prompt("a1")], k=3)[0]
    assert len(top) == 3 and top[0][0] == "b1 b2"
    assert top[0][1] >= top[1][1] >= top[2][1]


def test_complete_keeps_prefixes():
    gen = tiny_causal(3)
    rollout = gen.sample(PROMPTS, n=2)
    rows, prefix = torch.tensor([0, 3, 3]), torch.tensor([1, 2, 0])
    done = gen.complete(rollout, rows, prefix)
    assert done.batch_size == 3
    for m, (r, k) in enumerate(zip(rows.tolist(), prefix.tolist(), strict=True)):
        keep = min(k, int(rollout.response_mask[r].sum()))
        assert done.response_ids[m, :keep].tolist() == rollout.response_ids[r, :keep].tolist()
    assert done.group_ids.tolist() == [0, 1, 1]


def test_state_roundtrip_and_save(tmp_path):
    a, b = tiny_causal(4), tiny_causal(5)
    data = [Sample("b1", Prompt("a1"))]
    assert not torch.allclose(a.nll(data).total, b.nll(data).total)
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a.nll(data).total, b.nll(data).total)
    a.save(tmp_path / "m")
    assert (tmp_path / "m" / "config.json").exists()
    assert (tmp_path / "m" / "tokenizer.json").exists()


@pytest.mark.parametrize("overrides", [{}, {"arch": "gpt2"}, {"lora": LoRAConfig(r=4)}],
                         ids=["llama", "gpt2", "lora"])
def test_prompt_encoded_once_gives_generates_own_results(monkeypatch, overrides):
    """Beam search and n samples a prompt encode each prompt once and repeat its cache:
    the same sequences and scores as ``generate`` repeating the prompt itself."""
    gen = tiny_causal(6, **overrides)
    prompts = [Prompt("a1"), Prompt("a2 a3 a4 b5 b6"), Prompt("b1 a2")]  # left padding differs
    calls = []
    shared = gen._shared_prompt_cache
    monkeypatch.setattr(gen, "_shared_prompt_cache",
                        lambda *a: calls.append(a[2]) or shared(*a))
    fast = gen.beam_search(prompts, k=4)
    torch.manual_seed(0)
    fast_samples = gen.sample(prompts, n=3)
    assert calls == [4, 3]
    monkeypatch.setattr(gen, "_shared_prompt_cache", lambda *a: {})
    plain = gen.beam_search(prompts, k=4)
    torch.manual_seed(0)
    plain_samples = gen.sample(prompts, n=3)
    assert [[t for t, _ in row] for row in fast] == [[t for t, _ in row] for row in plain]
    for row_fast, row_plain in zip(fast, plain, strict=True):
        for (_, a), (_, b) in zip(row_fast, row_plain, strict=True):
            assert abs(a - b) < 1e-4
    assert fast_samples.texts == plain_samples.texts


def _shared_and_plain(gen, monkeypatch, prompts):
    """Beam search and samples of ``gen`` with the shared prompt cache, then without it."""
    results = []
    for off in (False, True):
        if off:
            monkeypatch.setattr(gen, "_shared_prompt_cache", lambda *a: {})
        beams = gen.beam_search(prompts, k=4)
        torch.manual_seed(0)
        results.append((beams, gen.sample(prompts, n=3).texts))
    monkeypatch.undo()
    return results


def test_prompt_cache_with_a_trained_lora_adapter_and_its_reference(monkeypatch):
    """With a non-zero adapter (a fresh one is the identity, so it cannot tell a pass with the
    adapter from one without) the policy and its π_ref (adapter disabled) each give
    ``generate``'s own results: the prompt pass runs with the adapter state of the search."""
    gen = tiny_causal(6, lora=LoRAConfig(r=4))
    prompts = [Prompt(""), Prompt("a2 a3 a4 b5 b6"), Prompt("b1 a2")]  # an all-padding head row
    g = torch.Generator().manual_seed(0)

    def perturb():
        with torch.no_grad():
            for name, p in gen.model.named_parameters():
                if "lora_B" in name:
                    p.add_(torch.randn(p.shape, generator=g))

    perturb()
    ref = gen.reference()  # folds the adapter into the base, restarts it at zero
    perturb()  # so the policy and π_ref differ again
    policy_beams = gen.beam_search(prompts, k=4)
    assert policy_beams != ref.beam_search(prompts, k=4)
    for model in (gen, ref):
        (fast, fast_texts), (plain, plain_texts) = _shared_and_plain(model, monkeypatch, prompts)
        assert [[t for t, _ in r] for r in fast] == [[t for t, _ in r] for r in plain]
        assert max(abs(a - b) for rf, rp in zip(fast, plain, strict=True)
                   for (_, a), (_, b) in zip(rf, rp, strict=True)) < 1e-4
        assert fast_texts == plain_texts


def test_prompt_cache_left_to_generate_where_the_model_names_its_cache(monkeypatch):
    """A pretrained model whose generation config names a ``cache_implementation`` (Gemma's
    hybrid cache, a static cache): ``generate`` refuses a ``cache=`` beside it, so the prompt
    is not pre-encoded and search and sampling still run (a ValueError before)."""
    gen = tiny_causal(6)
    gen.model.generation_config.cache_implementation = "static"
    prompts = [Prompt("a1"), Prompt("a2 a3 a4 b5 b6")]
    ids, mask = gen.encode_prompts(prompts)
    assert gen._shared_prompt_cache(ids, mask, 4) == {}
    beams = gen.beam_search(prompts, k=4)
    assert [len(row) for row in beams] == [4, 4]
    assert len(gen.sample(prompts, n=3).texts) == 6

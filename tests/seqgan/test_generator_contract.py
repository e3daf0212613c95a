"""The three built-in generators behave the same: sequence helpers, SFT policy, reference(),
``nll -> SequenceNLL`` with token counts and temperature, build-time checks of sizes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from advx.components import BuildContext
from advx.errors import ConfigError, DataError, NonFiniteError
from advx.rollout import (
    Prompt,
    Sample,
    SequenceNLL,
    left_pad,
    mask_through_eos,
    right_pad,
    shift_right,
)
from advx_causal.generator import CausalConfig, build_causal
from advx_seq2seq.generator import Seq2SeqConfig, build_seq2seq
from advx_seqgan.lstm import LSTMConfig, build_lstm

WORDS = "a b c d e f g h"


# ------------------------------------------------------------------------ sequence helpers
def test_mask_through_first_eos():
    ids = torch.tensor([[5, 1, 7, 1], [5, 6, 7, 8], [1, 1, 2, 3]])
    assert mask_through_eos(ids, eos_id=1).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1],
                                                         [1, 0, 0, 0]]
    assert mask_through_eos(ids, eos_id=None).tolist() == [[1] * 4] * 3


def test_right_and_left_pad():
    ids, mask = right_pad([[3, 4], [5], []], pad_id=0)
    assert ids.tolist() == [[3, 4], [5, 0], [0, 0]]
    assert mask.tolist() == [[1, 1], [1, 0], [0, 0]]
    ids, mask = left_pad([[3, 4], [5]], pad_id=9)
    assert ids.tolist() == [[3, 4], [9, 5]] and mask.tolist() == [[1, 1], [0, 1]]
    ids, mask = right_pad([[], []], pad_id=0)
    assert ids.shape == (2, 1) and mask.sum() == 0  # one column even when all are empty


def test_shift_right():
    assert shift_right(torch.tensor([[7, 8, 9]]), start_id=0).tolist() == [[0, 7, 8]]


# ------------------------------------------------------------------------ the generators
class WordTask:
    def texts(self) -> list[str]:
        return [WORDS]


def make(kind: str, tmp_path: Path, **keys):
    ctx = BuildContext(run_dir=tmp_path / kind, seed=0, device="cpu", task=WordTask())
    torch.manual_seed(0)
    if kind == "seq2seq":
        config = Seq2SeqConfig(**{"tokenizer": "word", "d_model": 16, "num_layers": 1,
                                  "num_heads": 2, "d_kv": 8, "d_ff": 32, "max_new_tokens": 6,
                                  "epochs": 2, "batch_size": 2, "value_head": False, **keys})
        return build_seq2seq(config, ctx)
    if kind == "causal":
        config = CausalConfig(**{"d_model": 16, "num_layers": 1, "num_heads": 2,
                                 "max_new_tokens": 6, "epochs": 2, "batch_size": 2, **keys})
        return build_causal(config, ctx)
    config = LSTMConfig(**{"vocab": "word", "vocab_size": 50, "max_len": 6, "epochs": 2,
                           "batch_size": 2, "emb_dim": 8, "hidden_dim": 8, **keys})
    return build_lstm(config, ctx)


KINDS = ["seq2seq", "causal", "lstm"]
DATA = [Sample("a b c", Prompt("d")), Sample("e f", Prompt("g h")), Sample("b", Prompt(""))]


def vocab_size(gen) -> int:
    """Tokens the generator can score (the LSTM never scores <pad>/<s>)."""
    if hasattr(gen, "vocab"):
        return gen.vocab.size - len(gen.vocab.banned_ids)
    return int(gen.model.config.vocab_size)


@pytest.mark.parametrize("kind", KINDS)
def test_nll_is_a_sequence_nll_with_token_counts(kind, tmp_path):
    gen = make(kind, tmp_path)
    nll = gen.nll(DATA)
    assert isinstance(nll, SequenceNLL)
    assert nll.tokens.tolist() == [4, 3, 2]  # words + EOS, in the generator's own tokenizer
    assert nll.total.shape == (3,) and nll.total.requires_grad
    assert bool((nll.total > 0).all())


@pytest.mark.parametrize("kind", KINDS)
def test_nll_temperature_scores_the_tempered_policy(kind, tmp_path):
    gen = make(kind, tmp_path)
    with torch.no_grad():
        plain, hot = gen.nll(DATA), gen.nll(DATA, temperature=1e6)
    assert not torch.allclose(plain.total, hot.total)
    # at τ → ∞ the tempered policy is uniform: log V nats per token
    expected = torch.full((3,), math.log(vocab_size(gen)))
    torch.testing.assert_close(hot.per_token(), expected, atol=1e-3, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_sft_policy_is_shared(kind, tmp_path):
    gen = make(kind, tmp_path)
    assert hasattr(gen.config, "max_grad_norm") and not hasattr(gen.config, "grad_clip")
    with pytest.raises(DataError, match=rf"{kind}\.sft got no samples"):
        gen.sft([])
    metrics = gen.sft(DATA)
    assert set(metrics) == {"sft/loss", "sft/examples", "sft/epochs"}
    assert metrics["sft/examples"] == 3 and metrics["sft/epochs"] == 2
    assert math.isfinite(metrics["sft/loss"])
    steps = gen.state_dict()["sft_optimizer"]["state"][0]["step"]
    assert int(steps) == 4  # 2 epochs × 2 minibatches
    gen.sft(DATA)  # the same optimizer carries on: its step count continues
    assert int(gen.state_dict()["sft_optimizer"]["state"][0]["step"]) == 8


@pytest.mark.parametrize("kind", KINDS)
def test_sft_nan_is_never_applied(kind, tmp_path):
    gen = make(kind, tmp_path)
    first = next(p for p in gen.model.parameters() if p.requires_grad)
    with torch.no_grad():
        first.view(-1)[0] = float("nan")
    before = [p.detach().clone() for p in gen.model.parameters()]
    with pytest.raises(NonFiniteError, match=rf"{kind} sft (loss|gradient norm) is nan"):
        gen.sft(DATA)
    for old, new in zip(before, gen.model.parameters(), strict=True):
        torch.testing.assert_close(old, new.detach(), equal_nan=True)


@pytest.mark.parametrize("kind", KINDS)
def test_reference_is_a_frozen_copy_taken_when_first_asked(kind, tmp_path):
    gen = make(kind, tmp_path)
    with torch.no_grad():
        start = gen.nll(DATA).total
    ref = gen.reference()
    assert ref is not gen and gen.reference() is ref and ref.reference() is ref
    assert not any(p.requires_grad for p in ref.model.parameters())
    gen.sft(DATA)
    with torch.no_grad():
        torch.testing.assert_close(ref.nll(DATA).total, start)  # training never moves it
        assert not torch.allclose(gen.nll(DATA).total, start)
    with pytest.raises(ConfigError, match="frozen"):
        ref.sft(DATA)


@pytest.mark.parametrize("kind", KINDS)
def test_batch_size_zero_fails_at_build(kind, tmp_path):
    with pytest.raises(ConfigError, match=r"generator\.batch_size must be ≥ 1, got 0"):
        make(kind, tmp_path, batch_size=0)


@pytest.mark.parametrize("kind, key", [("seq2seq", "max_new_tokens"),
                                       ("causal", "max_new_tokens"), ("lstm", "max_len")])
def test_length_zero_fails_at_build(kind, key, tmp_path):
    with pytest.raises(ConfigError, match=rf"generator\.{key} must be ≥ 1, got 0"):
        make(kind, tmp_path, **{key: 0})


def test_quiet_loading_hides_transformers_progress_bars():
    from advx_hf import loading
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    with loading(quiet=True):
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()  # restored
    with loading(quiet=False):
        assert hf_logging.is_progress_bar_enabled()


@pytest.mark.parametrize("kind, keys, message", [
    ("seq2seq", {"tokenizer": "chars"}, r"generator\.tokenizer must be 'bpe' or 'word'"),
    ("causal", {"tokenizer": "chars"}, r"generator\.tokenizer must be 'bpe' or 'word'"),
    ("seq2seq", {"top_k": -1}, r"generator\.top_k must be ≥ 0"),
    ("seq2seq", {"top_p": 1.5}, r"generator\.top_p must be in \[0, 1\]"),
    ("causal", {"lr": 0.0}, r"generator\.lr must be a positive number"),
    ("lstm", {"epochs": -1}, r"generator\.epochs must be ≥ 0, got -1"),
])
def test_more_late_keys_fail_at_build(kind, keys, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        make(kind, tmp_path, **keys)


def test_lstm_init_from_a_foreign_file(tmp_path):
    bad = tmp_path / "state.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match=r"generator\.init_from: .*state\.pt is not a saved"):
        make("lstm", tmp_path, init_from=str(bad))


@pytest.mark.parametrize("kind", KINDS)
def test_a_deep_copy_trains_its_own_weights(kind, tmp_path):
    """The MC rollout keeps ``copy.deepcopy(generator)`` as its lagging policy."""
    import copy

    gen = make(kind, tmp_path)
    gen.sft(DATA)
    clone = copy.deepcopy(gen)
    before = [p.detach().clone() for p in gen.model.parameters()]
    clone.sft(DATA)
    for old, new in zip(before, gen.model.parameters(), strict=True):
        assert torch.equal(old, new.detach())
    assert not all(torch.equal(a, b.detach()) for a, b in
                   zip(before, clone.model.parameters(), strict=True))

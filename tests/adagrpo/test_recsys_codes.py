"""Semantic ids: TIGER's disambiguation digit and RQ-VAE codes, and the prefix-trie
constraint on beam search (never an invalid item)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from adagrpo_kit import tiny_causal, tiny_seq2seq, write_beauty_fixture
from advx import BuildContext, Components, Prompt
from advx_recsys import NextItemConfig, build_next_item
from advx_recsys.items import disambiguate


def test_disambiguation_digit_makes_equal_codes_unique():
    codes = np.array([[1, 2], [1, 2], [0, 0], [1, 2]])
    out = disambiguate(["w", "x", "y", "z"], codes)
    assert out == {"w": (1, 2, 0), "x": (1, 2, 1), "y": (0, 0, 0), "z": (1, 2, 2)}


def test_rqvae_codes_are_unique_per_item_after_disambiguation():
    pytest.importorskip("vector_quantize_pytorch")
    from advx_recsys.rqvae import rqvae_codes

    vectors = np.random.default_rng(0).normal(size=(120, 8)).astype(np.float32)
    codes = rqvae_codes(vectors, codebook=[4, 4], hidden=[16], latent=4, epochs=3,
                        batch_size=64, lr=1e-3, commitment=0.25, seed=0)
    assert codes.shape == (120, 2) and codes.min() >= 0 and codes.max() < 4
    assert len({tuple(r) for r in codes}) < 120  # 16 codes for 120 items: collisions exist
    full = disambiguate([str(i) for i in range(120)], codes)
    assert len(set(full.values())) == 120
    assert all(full[str(i)][:2] == tuple(codes[i]) for i in range(120))


def test_tiny_seq2seq_builds_its_own_model_per_call():
    """``build_seq2seq`` reloads ``<run_dir>/generator-tiny`` when it exists: the kit must not
    share a folder between calls (it used the working directory, so every call got the first
    call's model, and the checkout got a ``generator-tiny/``)."""
    first, second = tiny_seq2seq(0), tiny_seq2seq(1)
    assert any(not torch.equal(a, b) for a, b in zip(first.model.parameters(),
                                                     second.model.parameters(), strict=True))
    assert tiny_seq2seq(0, d_model=16).model.config.d_model == 16


@pytest.mark.parametrize("policy", [tiny_causal, tiny_seq2seq], ids=["causal", "seq2seq"])
def test_constrained_beam_search_never_emits_an_invalid_item(policy):
    generator = policy(0)  # random weights: unconstrained it writes arbitrary strings
    valid = ["a1 b2", "a1 b3 b4", "a2 b1", "b5 a7"]
    prompts = [Prompt(p) for p in ("a1", "a3 a4", "b1 b2 b3", "a9", "b7 a0")]
    constrained = generator.beam_search(prompts, k=3, allowed=valid)
    texts = [t for row in constrained for t, _ in row]
    assert len(texts) == 15 and set(texts) <= set(valid)
    assert all(len({t for t, _ in row}) == 3 for row in constrained)  # distinct beams
    free = [t for row in generator.beam_search(prompts, k=3) for t, _ in row]
    assert not set(free) <= set(valid)  # without the trie the same model hallucinates


@pytest.mark.parametrize("name", ["causal", "seq2seq"])
def test_constrained_evaluation_reports_zero_hallucination_and_the_free_metrics(tmp_path, name):
    folder = write_beauty_fixture(tmp_path / "data")
    cfg = NextItemConfig(path=str(folder / "seq.txt"), attributes=str(folder / "attrs.json"),
                         codebook=[3, 3], svd_dim=4, history=3, topk=5, constrained=True,
                         eval_unconstrained=True, eval_users=8)
    ctx = BuildContext(run_dir=tmp_path, seed=0, device="cpu")
    task = build_next_item(cfg, ctx)
    gen_ctx = BuildContext(run_dir=tmp_path, seed=0, device="cpu", task=task)
    if name == "causal":
        from advx_causal import CausalConfig, build_causal

        generator = build_causal(CausalConfig(d_model=16, num_layers=1, num_heads=2,
                                              max_new_tokens=4), gen_ctx)
    else:  # the TIGER-like encoder-decoder
        from advx_seq2seq import Seq2SeqConfig, build_seq2seq

        generator = build_seq2seq(Seq2SeqConfig(d_model=16, num_layers=1, num_heads=2, d_kv=8,
                                                d_ff=32, max_new_tokens=4, tokenizer="word"),
                                  gen_ctx)
    metrics = task.evaluate(Components(task=task, generator=generator), "test")
    assert metrics["valid/hallucination"] == 0.0 and metrics["test/hallucination"] == 0.0
    assert metrics["test/free/hallucination"] > 0.0  # untrained policy, no constraint
    assert {"eval/seconds", "eval/free/seconds", "test/free/hr@10"} <= set(metrics) or \
        {"eval/seconds", "eval/free/seconds", "test/free/hr@5"} <= set(metrics)


def test_trie_processor_only_walks_valid_codes_under_random_scores():
    from advx_hf.constrained import TrieConstraint

    generator = tiny_causal(1)
    valid = ["a1 b2", "a1 b3 b4", "a2 b1", "b5 a7", "a1"]
    vocab = len(generator.tokenizer)
    children = generator._trie.get(valid, generator._target_tokens, vocab, "cpu")
    assert generator._trie.get(valid, generator._target_tokens, vocab, "cpu") is children
    assert generator._trie.get(list(valid), generator._target_tokens, vocab, "cpu") is not \
        children  # cached per catalogue object
    processor = TrieConstraint(children, width=2, eos_id=generator.eos_id)
    g = torch.Generator().manual_seed(0)
    prompt = torch.zeros(64, 2, dtype=torch.long)
    seqs = prompt
    for _ in range(5):  # greedy on random scores, every row at once
        scores = processor(seqs, torch.randn(64, vocab, generator=g))
        seqs = torch.cat([seqs, scores.argmax(-1, keepdim=True)], dim=1)
    responses = seqs[:, 2:]
    mask = (responses == generator.eos_id).int().cumsum(-1).roll(1, -1)
    mask[:, 0] = 0
    texts = generator.decode(responses, (mask == 0).long())
    assert set(texts) <= set(valid) and len(set(texts)) > 2


def test_seq2seq_trie_holds_targets_as_the_decoder_writes_them():
    """T5 targets: the code's ids and ``</s>``, no decoder start token (the constraint skips
    that one column); a code longer than ``max_new_tokens`` is truncated with its eos kept, so
    every beam still ends inside the budget on a (truncated) catalogue entry."""
    generator = tiny_seq2seq(0, max_new_tokens=3)
    valid = ["a1 b2 b3 b4", "a2 b1", "b5"]
    ids = [generator._target_ids(t) for t in valid]
    assert all(row[-1] == generator.eos_id and len(row) <= 3 for row in ids)
    assert all(generator.start_id not in row for row in ids)
    truncated = {generator._decode(torch.tensor([row]), torch.ones(1, len(row)))[0]
                 for row in ids}
    assert truncated == {"a1 b2", "a2 b1", "b5"}
    rows = generator.beam_search([Prompt("a1"), Prompt("b2 b3")], k=3, allowed=valid)
    assert {text for row in rows for text, _ in row} <= truncated


def test_a_generator_too_short_for_an_item_code_is_refused(tmp_path):
    from advx.errors import ConfigError
    from advx_causal import CausalConfig, build_causal

    folder = write_beauty_fixture(tmp_path / "data")
    cfg = NextItemConfig(path=str(folder / "seq.txt"), attributes=str(folder / "attrs.json"),
                         codebook=[3, 3], svd_dim=4, history=3, topk=5, constrained=True,
                         eval_users=4)
    task = build_next_item(cfg, BuildContext(run_dir=tmp_path, seed=0, device="cpu"))
    need = max(len(t.split()) for t in task.codec.texts()) + 1  # 2 codes + digit + eos
    def policy(max_new_tokens: int):
        return build_causal(CausalConfig(d_model=16, num_layers=1, num_heads=2,
                                         max_new_tokens=max_new_tokens),
                            BuildContext(run_dir=tmp_path, seed=0, device="cpu", task=task))

    with pytest.raises(ConfigError, match=f"generator.max_new_tokens={need}"):
        task.evaluate(Components(task=task, generator=policy(need - 1)), "test")
    metrics = task.evaluate(Components(task=task, generator=policy(need)), "test")
    assert metrics["test/hallucination"] == 0


def test_rqvae_codes_never_talk_to_a_process_group(monkeypatch):
    """Under a launcher each process builds the codes alone (the main process first, the
    others later): the quantiser must not sync k-means or codebooks across the group, which
    made the main process wait for ranks that were not building."""
    pytest.importorskip("vector_quantize_pytorch")
    import torch.distributed as dist
    from advx_recsys.rqvae import rqvae_codes

    def no_collectives(*args, **kwargs):
        raise AssertionError("a collective call while building item codes")

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda *a, **k: 2)
    monkeypatch.setattr(dist, "get_rank", lambda *a, **k: 0)
    for name in ("all_gather", "all_reduce", "broadcast", "barrier"):
        monkeypatch.setattr(dist, name, no_collectives)
    vectors = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    codes = rqvae_codes(vectors, codebook=[4, 4], hidden=[16], latent=4, epochs=2,
                        batch_size=32, lr=1e-3, commitment=0.25, seed=0)
    assert codes.shape == (60, 2)


def test_rqvae_codes_are_trained_once_per_input_and_read_back(monkeypatch, tmp_path):
    """Every process of a study builds the same codes: the second build with the same inputs
    reads them from the cache; other inputs (a seed) train again; an empty ADVX_CACHE_DIR
    turns the cache off."""
    pytest.importorskip("vector_quantize_pytorch")
    from advx_recsys import rqvae

    trained = []
    real = rqvae.rqvae_codes
    monkeypatch.setattr(rqvae, "rqvae_codes",
                        lambda *a, **k: trained.append(k["seed"]) or real(*a, **k))
    monkeypatch.setenv("ADVX_CACHE_DIR", str(tmp_path / "cache"))
    vectors = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    args = {"hidden": [16], "latent": 4, "epochs": 2, "batch_size": 32, "lr": 1e-3,
            "commitment": 0.25}
    first = rqvae.cached_rqvae_codes(vectors, [4, 4], seed=0, **args)
    again = rqvae.cached_rqvae_codes(vectors.copy(), (4, 4), seed=0, **args)
    assert trained == [0] and np.array_equal(first, again)
    rqvae.cached_rqvae_codes(vectors, [4, 4], seed=1, **args)
    assert trained == [0, 1]
    monkeypatch.setenv("ADVX_CACHE_DIR", "")
    rqvae.cached_rqvae_codes(vectors, [4, 4], seed=0, **args)
    assert trained == [0, 1, 0]

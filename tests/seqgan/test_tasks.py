from __future__ import annotations

import pickle
import random
from pathlib import Path

import pytest
import torch
from advx.components import Components
from advx.errors import DataError
from advx.rollout import Sample
from advx_seqgan.lstm import LSTMConfig, LSTMGenerator
from advx_text_tasks.bleu import References, bleu, self_bleu
from advx_text_tasks.oracle import OracleLSTM
from advx_text_tasks.tasks import (
    OracleLMConfig,
    OracleLMTask,
    TextCorpusConfig,
    TextCorpusTask,
    nll_per_sample,
)
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from .conftest import DATA

ORACLE = DATA / "seqgan_oracle/target_params_py3.pkl"
needs_oracle = pytest.mark.skipif(not ORACLE.is_file(), reason=f"{ORACLE} not present")


@needs_oracle
def test_oracle_loads_with_documented_shapes():
    with ORACLE.open("rb") as f:
        params = pickle.load(f, encoding="latin1")
    assert len(params) == 15 and params[0].shape == (5000, 32) and params[13].shape == (32, 5000)
    oracle = OracleLSTM.from_pickle(ORACLE)
    assert oracle.vocab_size == 5000
    assert oracle.lstm.weight_ih_l0.shape == (128, 32)
    # gate order i, f, g(c), o: the input gate block is Wi^T
    assert torch.allclose(oracle.lstm.weight_ih_l0[:32], torch.from_numpy(params[1].T))
    assert torch.allclose(oracle.lstm.weight_ih_l0[64:96], torch.from_numpy(params[10].T))


@needs_oracle
def test_nll_oracle_of_own_samples_is_its_entropy():
    task = OracleLMTask(OracleLMConfig(oracle_path=str(ORACLE), num_train=300, num_test=600))
    entropy = task.oracle_entropy()  # NLL of the 600 held-out oracle samples
    assert 5.0 < entropy < 6.5  # the reference oracle: ~5.76 nats a token
    own = [s.text for s in task.generator_train()]
    assert abs(task.nll_oracle(own) - entropy) < 0.15
    # a uniform generator scores far worse: ln(5000) = 8.5 nats a token is its own entropy
    uniform = [" ".join(str(random.randrange(5000)) for _ in range(20)) for _ in range(100)]
    assert task.nll_oracle(uniform) > entropy + 3


def test_random_oracle_task_and_evaluate():
    cfg = OracleLMConfig(oracle_path="", vocab_size=40, seq_len=6, num_train=200, num_test=100,
                         num_eval_samples=100, num_fakes=10, d_real=50, temperatures=[0.5])
    task = OracleLMTask(cfg)
    assert len(task.generator_train()) == 200 and len(task.augment_prompts(1)) == 10
    real = task.classifier_train()
    assert len(real) == 50 and {s.label for s in real} == {1}
    gen = LSTMGenerator(LSTMConfig(vocab="ids", vocab_size=40, max_len=6), [])
    metrics = task.evaluate(Components(task=task, generator=gen), "pretrain")
    model = {k for k in metrics
             if not k.startswith("baseline/") and not k.endswith(("_se", "_resolvable"))}
    assert model == {"nll_oracle", "nll_test", "nll_oracle@t0.5", "nll_test@t0.5"}
    assert {f"{k}_se" for k in model} <= set(metrics)
    assert {"baseline/unigram/nll_oracle", "baseline/unigram/nll_test",
            "baseline/real/nll_oracle"} <= set(metrics)
    fakes = task.synthetic_samples(gen.sample(task.augment_prompts(1)))
    assert {s.label for s in fakes} == {0}
    with pytest.raises(DataError, match="oracle file"):
        OracleLMTask(OracleLMConfig(oracle_path="/nonexistent.pkl"))


def test_bleu_equals_nltk_sentence_bleu():
    rng = random.Random(0)
    words = ["a", "b", "c", "d", "e", "f", "g"]
    refs = [[rng.choice(words) for _ in range(rng.randint(3, 9))] for _ in range(30)]
    hyps = [[rng.choice(words) for _ in range(rng.randint(1, 9))] for _ in range(20)]
    smooth = SmoothingFunction().method1
    for n in (2, 3, 4, 5):
        weights = tuple(1.0 / n for _ in range(n))
        expected = sum(sentence_bleu(refs, h, weights, smoothing_function=smooth)
                       for h in hyps) / len(hyps)
        assert bleu(hyps, refs, n) == pytest.approx(expected, abs=1e-9)
        expected_self = sum(
            sentence_bleu(hyps[:i] + hyps[i + 1:], h, weights, smoothing_function=smooth)
            for i, h in enumerate(hyps)
        ) / len(hyps)
        assert self_bleu(hyps, n) == pytest.approx(expected_self, abs=1e-9)


def test_references_counted_once_score_every_order_as_nltk():
    rng = random.Random(1)
    words = ["a", "b", "c", "d", "e"]
    refs = [[rng.choice(words) for _ in range(rng.randint(2, 8))] for _ in range(25)]
    hyps = [[rng.choice(words) for _ in range(rng.randint(1, 8))] for _ in range(15)]
    counted = References(refs, 5)
    smooth = SmoothingFunction().method1
    for n in (1, 2, 3, 5):
        weights = tuple(1.0 / n for _ in range(n))
        expected = [sentence_bleu(refs, h, weights, smoothing_function=smooth) for h in hyps]
        assert counted.sentence_bleus(hyps, n) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="counted up to 5"):
        counted.sentence_bleus(hyps, 6)


def test_nll_per_sample_in_length_batches_keeps_each_samples_value():
    """Batching by length (less padding) changes neither a sample's NLL nor its place."""
    rng = random.Random(2)
    texts = [" ".join(rng.choice("abcdefgh") for _ in range(rng.randint(1, 12)))
             for _ in range(37)]
    gen = LSTMGenerator(LSTMConfig(vocab="word", vocab_size=20, max_len=14), texts)
    samples = [Sample(t, None) for t in texts]
    totals, tokens = nll_per_sample(gen, samples, temperature=0.8, batch=5)
    for i, sample in enumerate(samples):  # each alone: no padding at all
        alone = gen.nll([sample], temperature=0.8)
        assert totals[i] == pytest.approx(float(alone.total[0]), rel=1e-5)
        assert tokens[i] == float(alone.tokens[0]) == len(sample.text.split()) + 1  # + EOS


def test_text_corpus_char_level(tmp_path):
    train = tmp_path / "train.txt"
    test = tmp_path / "test.txt"
    train.write_text("我爱北京\n天安门上太阳升\n\n我爱太阳\n", encoding="utf-8")
    test.write_text("我爱北京天安门\n", encoding="utf-8")
    task = TextCorpusTask(TextCorpusConfig(train_path=str(train), test_path=str(test),
                                           tokenize="char", num_eval_samples=8,
                                           self_bleu_samples=8, num_fakes=4))
    assert task.texts()[0] == "我 爱 北 京" and len(task.texts()) == 3
    gen = LSTMGenerator(LSTMConfig(vocab="word", vocab_size=50, max_len=10, epochs=30,
                                   lr=0.05), task.texts())
    gen.sft(task.generator_train())
    metrics = task.evaluate(Components(task=task, generator=gen), "pretrain")
    assert {"bleu2", "self_bleu5", "nll_test", "mean_len"} <= set(metrics)
    assert 0.0 <= metrics["bleu2"] <= 1.0
    perfect = task.quality_diversity(["我 爱 北 京 天 安 门"] * 3)
    assert perfect["bleu5"] == pytest.approx(1.0) and perfect["self_bleu2"] == pytest.approx(1.0)
    with pytest.raises(DataError, match="not found"):
        TextCorpusTask(TextCorpusConfig(train_path=str(tmp_path / "missing.txt")))


def test_cnn_discriminator_separates_real_from_fake():
    from advx_seqgan.cnn import CNNConfig, CNNDiscriminator

    cfg = CNNConfig(vocab="ids", vocab_size=20, max_len=6, emb_dim=8, filter_sizes=[1, 2, 6],
                    num_filters=[8, 8, 4], lr=1e-2, epochs=5, valid_fraction=0.2)
    disc = CNNDiscriminator(cfg, [], seed=0, device="cpu")
    rng = random.Random(0)
    real = [Sample(" ".join(str(rng.randrange(0, 10)) for _ in range(6)), label=1)
            for _ in range(200)]
    fake = [Sample(" ".join(str(rng.randrange(10, 20)) for _ in range(6)), label=0)
            for _ in range(200)]
    metrics = disc.fit(real + fake)
    assert metrics["cls/valid_acc"] > 0.9
    probs = disc.predict_proba(real[:5] + fake[:5])
    assert probs.shape == (10, 2) and bool((probs[:5, 1] > 0.5).all())
    assert disc.loss(real[:5]).shape == (5,)


def test_cnn_predictions_by_token_tables_equal_the_convolutions():
    """The look-up shortcut of ``predict_proba`` matches the convolutional forward, and is
    rebuilt when training or ``load_state_dict`` changes the weights."""
    from advx_seqgan.cnn import CNNConfig, CNNDiscriminator

    cfg = CNNConfig(vocab="ids", vocab_size=30, max_len=8, emb_dim=6, filter_sizes=[1, 3, 8],
                    num_filters=[5, 4, 3], epochs=1, lr=0.05, valid_fraction=0.0)
    disc = CNNDiscriminator(cfg, [], seed=0, device="cpu")
    rng = random.Random(0)
    samples = [Sample(" ".join(str(rng.randrange(30)) for _ in range(rng.randrange(1, 9))),
                      label=i % 2) for i in range(40)]

    def convolved() -> torch.Tensor:
        with torch.no_grad():
            return torch.softmax(disc.model(disc.encode(samples)), -1)

    first = disc.predict_proba(samples)
    torch.testing.assert_close(first, convolved())
    tables = disc._tables
    assert tables is not None and tables.matches(disc.model)

    saved = {k: v.clone() for k, v in disc.model.state_dict().items()}
    disc.fit(samples)  # optimizer steps change the weights in place
    assert not tables.matches(disc.model)
    after_fit = disc.predict_proba(samples)
    torch.testing.assert_close(after_fit, convolved())
    assert not torch.allclose(after_fit, first)

    disc.model.load_state_dict(saved)
    torch.testing.assert_close(disc.predict_proba(samples), first)

    disc.config.predict_tables_mb = 0  # too large: predictions convolve
    torch.testing.assert_close(disc.predict_proba(samples), first)
    assert disc._token_tables() is None


def test_cnn_max_batches_caps_the_minibatches_of_a_fit():
    """``classifier.max_batches``: a fit stops after that many optimizer steps (Texygen's 3
    minibatches a call), counted across epochs; 0 keeps every minibatch of every epoch."""
    from advx.components import BuildContext
    from advx.errors import ConfigError
    from advx_seqgan.cnn import CNNConfig, CNNDiscriminator, build_cnn_discriminator

    samples = [Sample(f"{i % 7} {i % 5} {i % 3}", label=i % 2) for i in range(200)]

    def steps(max_batches: int) -> tuple[int, float]:
        cfg = CNNConfig(vocab="ids", vocab_size=10, max_len=4, emb_dim=4, filter_sizes=[1, 2],
                        num_filters=[3, 3], epochs=2, batch_size=16, valid_fraction=0.0,
                        max_batches=max_batches)
        disc = CNNDiscriminator(cfg, [], seed=0, device="cpu")
        metrics = disc.fit(samples)
        return disc.optimizer.state_dict()["state"][0]["step"].item(), metrics["cls/batches"]

    assert steps(0) == (2 * 13, 26.0)  # ⌈200 / 16⌉ = 13 minibatches × 2 epochs
    assert steps(3) == (3, 3.0)
    assert steps(20) == (20, 20.0)  # the cap spans epochs: 13 + 7
    assert steps(100) == (26, 26.0)  # a cap above the epochs' total changes nothing
    with pytest.raises(ConfigError, match=r"classifier\.max_batches"):
        build_cnn_discriminator(CNNConfig(max_batches=-1),
                                BuildContext(run_dir=Path("."), seed=0, device="cpu"))

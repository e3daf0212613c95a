"""The export forms without a run: LSTM and CNN as safetensors + JSON rebuilt with torch
alone (the snippets of docs/using-models.md), an AutoModelForSequenceClassification
classifier as a plain Hugging Face directory, and a component without ``export``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from advx.components import BuildContext
from advx.rollout import Prompt, Sample
from advx.use import SupportsExport
from safetensors.torch import load_file
from torch import nn


class _Task:
    def texts(self) -> list[str]:
        return ["red shoes for running", "a blue lamp", "steel kettle", "red lamp shoes"] * 3


def _ctx(tmp_path: Path) -> BuildContext:
    return BuildContext(run_dir=tmp_path, seed=0, device="cpu", task=_Task())


def test_lstm_export_round_trip(tmp_path):
    from advx_seqgan.lstm import LSTMConfig, build_lstm

    generator = build_lstm(LSTMConfig(vocab="word", vocab_size=50, emb_dim=8, hidden_dim=6),
                           _ctx(tmp_path))
    assert isinstance(generator, SupportsExport)
    generator.export(tmp_path / "lstm")
    config = json.loads((tmp_path / "lstm/config.json").read_text())
    weights = load_file(str(tmp_path / "lstm/model.safetensors"))

    class LSTMLM(nn.Module):  # the documented form, torch only
        def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab_size, emb_dim)
            self.lstm = nn.LSTM(emb_dim, hidden_dim, batch_first=True)
            self.out = nn.Linear(hidden_dim, vocab_size)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.out(self.lstm(self.embed(ids))[0])

    plain = LSTMLM(config["vocab_size"], config["emb_dim"], config["hidden_dim"])
    plain.load_state_dict(weights)
    ids = torch.randint(0, config["vocab_size"], (3, 7))
    torch.testing.assert_close(plain(ids), generator.model(ids), rtol=0, atol=0)
    assert config["start_id"] == generator.vocab.start_id
    assert (tmp_path / "lstm/tokenizer/tokenizer.json").is_file()


def test_cnn_export_round_trip(tmp_path):
    from advx_seqgan.cnn import CNNConfig, build_cnn_discriminator

    disc = build_cnn_discriminator(CNNConfig(vocab="ids", vocab_size=30, max_len=6, emb_dim=8,
                                             filter_sizes=[2, 3], num_filters=[4, 5]),
                                   _ctx(tmp_path))
    disc.export(tmp_path / "cnn")
    config = json.loads((tmp_path / "cnn/config.json").read_text())
    w = load_file(str(tmp_path / "cnn/model.safetensors"))
    ids = torch.randint(0, config["vocab_size"], (4, config["max_len"]))
    # the documented forward: embed → conv per width → relu → max over time → highway → out
    x = F.embedding(ids, w["embed.weight"]).transpose(1, 2)
    pooled = torch.cat([F.relu(F.conv1d(x, w[f"convs.{i}.weight"], w[f"convs.{i}.bias"]))
                        .amax(-1) for i in range(len(config["filter_sizes"]))], -1)
    gate = torch.sigmoid(F.linear(pooled, w["highway.gate.weight"], w["highway.gate.bias"]))
    high = gate * F.relu(F.linear(pooled, w["highway.transform.weight"],
                                  w["highway.transform.bias"])) + (1 - gate) * pooled
    logits = F.linear(high, w["out.weight"], w["out.bias"])
    disc.model.eval()
    torch.testing.assert_close(logits, disc.model(ids), rtol=1e-6, atol=1e-6)
    assert (tmp_path / "cnn/vocab.txt").read_text().strip() == "ids 30"


def test_sequence_classification_export_is_a_plain_hf_directory(tmp_path):
    from advx_encoder_classifier.classifier import (
        EncoderClassifierConfig,
        build_encoder_classifier,
    )
    from advx_hf import train_tokenizer
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig
    from transformers import BertForSequenceClassification as Bert

    tokenizer = train_tokenizer(_Task().texts(), vocab_size=60)
    base = tmp_path / "tiny-bert"
    Bert(BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                    num_attention_heads=2, intermediate_size=32, num_labels=2,
                    pad_token_id=tokenizer.pad_token_id)).save_pretrained(base)
    tokenizer.save_pretrained(base)
    classifier = build_encoder_classifier(
        EncoderClassifierConfig(model=str(base), arch="sequence_classification",
                                input="{query} | {title}"), _ctx(tmp_path))
    classifier.export(tmp_path / "cls")
    info = json.loads((tmp_path / "cls/advx.json").read_text())
    assert info["architecture"] == "sequence_classification"
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "cls").eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "cls")
    rows = [("red shoes", "a blue lamp"), ("steel kettle", "steel kettle")]
    batch = tok([info["input"].format(query=q, title=t) for q, t in rows], padding=True,
                truncation=True, max_length=info["max_length"], return_tensors="pt")
    with torch.no_grad():
        probs = torch.softmax(model(**batch).logits, -1)
    expected = classifier.predict_proba([Sample(q, Prompt("", {"title": t})) for q, t in rows])
    torch.testing.assert_close(probs, expected, rtol=1e-5, atol=1e-6)


def test_component_without_export_is_one_config_error(toy_pm, toy_recipe, tmp_path):
    from advx.errors import ConfigError
    from advx.runner import run_recipe
    from advx.use import export_run

    run = run_recipe(toy_recipe, ["loop.rounds=1"], run_dir=tmp_path / "toy").run_dir
    with pytest.raises(ConfigError, match=r"generator 'toy_unigram' .* cannot be exported"):
        export_run(run, tmp_path / "out")
    assert not (tmp_path / "out").exists()

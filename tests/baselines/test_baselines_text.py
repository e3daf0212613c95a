"""Text tasks: the unigram and real-text baselines on hand-made corpora, SEs, the single-file
corpus split and the evaluation samples written to the run directory."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from advx.components import BuildContext, Components
from advx.errors import ConfigError
from advx.rollout import Rollout, SequenceNLL
from advx_text_tasks.baselines import Unigram
from advx_text_tasks.tasks import TextCorpusConfig, build_text_corpus


def ctx(tmp_path: Path) -> BuildContext:
    return BuildContext(run_dir=tmp_path, seed=0, device="cpu")


def test_unigram_nll_by_hand():
    model = Unigram([["a", "b"], ["a"]])  # a: 2, b: 1, </s>: 2 → total 5, 3 types + <unk>
    totals, tokens = model.nll([["a", "c"]])  # a, c (unknown), </s>
    expected = -(math.log(3 / 9) + math.log(1 / 9) + math.log(3 / 9))
    assert totals.tolist() == pytest.approx([expected]) and tokens.tolist() == [3]
    assert Unigram([["a", "b"]], eos=False).nll([["b"]])[1].tolist() == [1]


def test_unigram_samples_follow_the_training_frequencies():
    model = Unigram([["x"]] * 10)  # p(x) = p(</s>) = 1/2
    drawn = model.sample(2000, seed=0)
    assert model.sample(5, seed=3) == model.sample(5, seed=3)
    assert {t for s in drawn for t in s} == {"x"}
    assert all(len(s) <= 1 for s in drawn)  # capped at the longest training sentence
    assert sum(len(s) for s in drawn) / len(drawn) == pytest.approx(0.5, abs=0.05)
    assert all(len(s) == 3 for s in model.sample(4, seed=0, length=3))


def _corpus(tmp_path: Path, train: list[str], test: list[str], **kw) -> TextCorpusConfig:
    (tmp_path / "train.txt").write_text("\n".join(train) + "\n")
    (tmp_path / "test.txt").write_text("\n".join(test) + "\n")
    return TextCorpusConfig(train_path=str(tmp_path / "train.txt"),
                            test_path=str(tmp_path / "test.txt"), bleu_orders=[2], **kw)


def test_two_sentence_baselines_by_hand(tmp_path):
    # every training sentence is "a b": the unigram model writes a/b strings; the real held
    # out text ("a b" twice, the test sentences beyond the one reference) matches exactly
    cfg = _corpus(tmp_path, ["a b"] * 4, ["a b", "a b", "a b"], num_eval_samples=2,
                  bleu_references=1, self_bleu_samples=2)
    task = build_text_corpus(cfg, ctx(tmp_path))
    out = task.baselines()
    assert task.held_out_real() == ["a b", "a b"]
    assert out["baseline/real/bleu2"] == pytest.approx(1.0)
    assert out["baseline/real/self_bleu2"] == pytest.approx(1.0)
    assert out["baseline/real/bleu2_se"] == 0.0
    # the unigram model: p(a) = p(b) = p(</s>) = 1/3; add-one: (4+1)/(12+4) each
    assert out["baseline/unigram/nll_test"] == pytest.approx(-math.log(5 / 16))
    assert 0.0 <= out["baseline/unigram/bleu2"] <= 1.0


class FixedGenerator:
    """Writes the same sentence; NLL 1 nat per token."""

    def sample(self, prompts, n=1, temperature=1.0):
        rollout = Rollout.__new__(Rollout)
        rollout.texts = ["a b"] * (len(prompts) * n)
        return rollout

    def nll(self, samples, temperature=1.0):
        tokens = torch.tensor([len(s.text.split()) + 1.0 for s in samples])
        return SequenceNLL(total=tokens.clone(), tokens=tokens)


def test_evaluation_has_ses_baselines_and_writes_its_samples(tmp_path):
    cfg = _corpus(tmp_path, ["a b", "b a c", "c a"], ["a b c", "c b", "a"],
                  num_eval_samples=6, self_bleu_samples=6, save_eval_samples=4,
                  temperatures=[0.5])
    task = build_text_corpus(cfg, ctx(tmp_path))
    metrics = task.evaluate(Components(task=task, generator=FixedGenerator()), "round-2")
    assert metrics["nll_test"] == pytest.approx(1.0) and metrics["nll_test_se"] == 0.0
    for key in ("bleu2", "self_bleu2", "bleu2@t0.5"):
        assert f"{key}_se" in metrics and f"{key}_resolvable" in metrics
    assert metrics["self_bleu2"] == pytest.approx(1.0)
    assert {"baseline/unigram/bleu2", "baseline/real/self_bleu2",
            "baseline/unigram/nll_test"} <= set(metrics)
    rows = [json.loads(line) for line in
            (tmp_path / "samples" / "eval-round-2.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and {r["temperature"] for r in rows} == {1.0, 0.5}
    assert rows[0] == {"phase": "evaluate", "stage": "round-2", "temperature": 1.0, "text": "a b"}


def test_single_file_corpus_with_a_seeded_held_out_split(tmp_path):
    lines = [f"w{i} x" for i in range(20)]
    (tmp_path / "all.txt").write_text("\n".join(lines) + "\n")
    cfg = TextCorpusConfig(path=str(tmp_path / "all.txt"), test_fraction=0.25, split_seed=1,
                           train_path="/nonexistent", test_path="/nonexistent")
    task = build_text_corpus(cfg, ctx(tmp_path))
    train, test = [s.text for s in task.train], [s.text for s in task.test]
    assert len(test) == 5 and len(train) == 15 and sorted(train + test) == sorted(lines)
    again = build_text_corpus(cfg, ctx(tmp_path))
    assert [s.text for s in again.test] == test  # the split is seeded, not the run's seed
    other = build_text_corpus(TextCorpusConfig(path=str(tmp_path / "all.txt"),
                                               test_fraction=0.25, split_seed=2), ctx(tmp_path))
    assert [s.text for s in other.test] != test
    with pytest.raises(ConfigError, match="test_fraction"):
        build_text_corpus(TextCorpusConfig(path=str(tmp_path / "all.txt"), test_fraction=1.0),
                          ctx(tmp_path))

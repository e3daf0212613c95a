"""Classifier ``ranker``: SASRec sequence training (CE and sampled-negative BCE), full-ranking
evaluation of the leave-one-out users, early stopping that restores the best epoch."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from adagrpo_kit import write_beauty_fixture
from advx import BuildContext, ConfigError, DataError, Sample
from advx_recsys import NextItemConfig, RankerConfig, build_next_item, build_ranker

SMALL = {"d_model": 16, "num_heads": 2, "num_layers": 1, "dropout": 0.0, "batch_size": 16,
         "lr": 1e-2, "max_history": 8}


def ctx(**kw) -> BuildContext:
    return BuildContext(run_dir=Path("."), seed=0, device="cpu", **kw)


def fixture_task(tmp_path: Path):
    folder = write_beauty_fixture(tmp_path / "data", users=60)
    return build_next_item(NextItemConfig(path=str(folder / "seq.txt"), item_tokens="id"),
                           ctx())


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_sequence_training_learns_the_fixture(tmp_path, loss):
    task = fixture_task(tmp_path)
    ranker = build_ranker(RankerConfig(**SMALL, epochs=40, loss=loss, negatives=4,
                                       patience=0), ctx(task=task))
    metrics = ranker.fit(task.classifier_train())
    # the fixture's sequences step through item ids by 2: learnable far beyond chance (10/30)
    assert metrics["ranker/test_hr@10"] > 0.6
    assert metrics["ranker/valid_hr@10"] == ranker.history[int(metrics["ranker/best_epoch"]) - 1][
        "hr@10"]
    assert len(ranker.history) == 40


def test_early_stopping_restores_the_best_epoch(tmp_path, monkeypatch):
    task = fixture_task(tmp_path)
    ranker = build_ranker(RankerConfig(**SMALL, epochs=20, patience=2), ctx(task=task))
    scripted = iter([0.1, 0.3, 0.2, 0.25, 0.9])  # best at epoch 2, then 2 epochs worse
    states = []

    def fake_eval(pairs):
        states.append(copy.deepcopy(ranker.net.state_dict()))
        value = next(scripted)
        return {"hr@5": value, "hr@10": value, "ndcg@5": value, "ndcg@10": value}

    monkeypatch.setattr(ranker, "evaluate_pairs", fake_eval)
    metrics = ranker.fit(task.classifier_train())
    assert metrics["ranker/best_epoch"] == 2 and metrics["ranker/epochs"] == 4
    assert len(states) == 5  # 4 epochs + the final test ranking
    final = ranker.net.state_dict()
    for name, value in final.items():
        torch.testing.assert_close(value, states[1][name])
    assert any(not torch.equal(final[n], states[3][n]) for n in final)  # not the last epoch


def test_full_ranking_matches_score_all_and_masking(tmp_path):
    task = fixture_task(tmp_path)
    ranker = build_ranker(RankerConfig(**SMALL, epochs=2), ctx(task=task))
    ranker.fit(task.classifier_train())
    pairs = task.eval_pairs("test")
    ranks = ranker.rank_targets([h for h, _ in pairs], [t for _, t in pairs])
    scores = ranker.score_all([h for h, _ in pairs])
    cols = torch.tensor([task.index[t] for _, t in pairs])
    expected = (scores > scores.gather(1, cols[:, None])).sum(-1)
    assert ranks.tolist() == expected.tolist()
    ranker.config.mask_history = True
    masked = ranker.rank_targets([h for h, _ in pairs], [t for _, t in pairs])
    assert (masked <= ranks).all()


def test_bad_ranker_keys_and_label0_in_sequence_mode(tmp_path):
    task = fixture_task(tmp_path)
    with pytest.raises(ConfigError, match=r"classifier\.loss"):
        build_ranker(RankerConfig(loss="hinge"), ctx(task=task))
    ranker = build_ranker(RankerConfig(**SMALL, epochs=1), ctx(task=task))
    sample = task.classifier_train()[0]
    with pytest.raises(DataError, match="training: pairs"):
        ranker.fit([Sample(sample.text, sample.prompt, label=0)])
    pairs = build_ranker(RankerConfig(**SMALL, epochs=1, training="pairs", select="heldout",
                                      valid_fraction=0.2), ctx(task=task))
    out = pairs.fit([*task.classifier_train(), Sample(sample.text, sample.prompt, label=0)])
    assert "ranker/heldout_hr@10" in out

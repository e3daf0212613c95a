"""Product-relevance baselines on hand-made rows, label_threshold, the nested label_map
error, and baselines + SEs in the task's evaluation."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from advx.components import BuildContext, Components
from advx.errors import ConfigError, DataError
from advx_product_relevance import ProductRelevanceConfig, build_product_relevance
from advx_product_relevance.baselines import bm25_scores, relevance_baselines, word_overlap
from advx_product_relevance.data import rows_from_table

SHARED = Path(__file__).resolve().parents[2] / "../shared/data/crowdflower"


def test_word_overlap_pr_auc_on_four_hand_made_rows():
    products = {"p1": {"title": "Red Shoe"}}
    queries = ["red shoe", "blue shoe", "green hat", "red hat"]  # overlap 1, .5, 0, .5
    truth = [1, 1, 0, 0]
    assert [word_overlap(q, "Red Shoe") for q in queries] == [1.0, 0.5, 0.0, 0.5]
    out = relevance_baselines(queries, ["p1"] * 4, truth, products)
    # thresholds 1.0: P = 1, R = 1/2; 0.5: P = 2/3, R = 1 → AP = 1/2·1 + 1/2·2/3
    assert out["baseline/word_overlap/pr_auc"] == pytest.approx(5 / 6)
    # pairs (pos, neg): (1,.5) (1,0) (.5,.5 tie → 1/2) (.5,0) → (1+1+.5+1)/4
    assert out["baseline/word_overlap/roc_auc"] == pytest.approx(3.5 / 4)
    assert out["baseline/chance/pr_auc"] == 0.5 and out["baseline/chance/roc_auc"] == 0.5
    assert {"baseline/bm25/pr_auc", "baseline/bm25/pr_auc_se",
            "baseline/word_overlap/pr_auc_se"} <= set(out)


def test_bm25_scores_rank_rare_matching_terms_first_and_equal_the_formula():
    products = {"p1": {"title": "red shoe"}, "p2": {"title": "red hat"},
                "p3": {"title": "blue scarf"}}
    scores = bm25_scores(["shoe", "red", "shoe", "wool"], ["p1", "p1", "p3", "p1"], products)
    # "shoe" is in 1 of 3 documents, dl = avgdl: score = idf = ln((3 - 1 + .5) / (1 + .5))
    assert scores[0] == pytest.approx(math.log(2.5 / 1.5))
    assert scores[0] > scores[1] > 0 == scores[2] == scores[3]  # common "red" weighs less


def test_label_threshold_maps_continuous_scores():
    rows = [{"q": f"q{i}", "t": "title", "score": s}
            for i, s in enumerate([1.0, 2.33, 2.5, 2.67, 3.0, "2.4"])]
    mapped = rows_from_table(rows, {"query": "q", "label": "score"}, {"title": "t"}, {},
                             label_threshold=2.5)
    assert [r.label for r in mapped] == [0, 0, 1, 1, 1, 0]
    with pytest.raises(DataError, match="not a number"):
        rows_from_table([{"q": "q", "t": "t", "score": "high"}], {"query": "q", "label": "score"},
                        {"title": "t"}, {}, label_threshold=2.5)


def _csv(tmp_path: Path) -> Path:
    rows = [{"pid": f"P{p}", "title": f"widget {p}", "query": f"widget {p} q{k}",
             "score": [1.0, 2.33, 2.67, 3.0][k]} for p in range(12) for k in range(4)]
    path = tmp_path / "scores.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _config(path: Path, **kw) -> ProductRelevanceConfig:
    return ProductRelevanceConfig(
        preset="", path=str(path), columns={"query": "query", "label": "score",
                                            "product_id": "pid"},
        fields={"title": "title"}, cold_fraction=0.25, **kw)


def ctx(tmp_path: Path) -> BuildContext:
    return BuildContext(run_dir=tmp_path, seed=0, device="cpu")


def test_label_threshold_in_a_task_and_its_validation(tmp_path):
    path = _csv(tmp_path)
    task = build_product_relevance(_config(path, label_threshold=2.5), ctx(tmp_path))
    assert sorted({(r.query[-2:], r.label) for r in task.warm_rows}) == [
        ("q0", 0), ("q1", 0), ("q2", 1), ("q3", 1)]
    with pytest.raises(ConfigError, match="both map labels"):
        build_product_relevance(_config(path, label_threshold=2.5, label_map={"3.0": 1}),
                                ctx(tmp_path))
    with pytest.raises(ConfigError, match="two classes"):
        build_product_relevance(_config(path, label_threshold=2.5,
                                        label_names=["a", "b", "c"]), ctx(tmp_path))


def test_a_dotted_label_override_is_refused_not_nested(tmp_path):
    from omegaconf import OmegaConf

    # what `task.label_map.2.33=0` becomes on the command line
    nested = OmegaConf.to_container(OmegaConf.from_dotlist(["label_map.2.33=0"]))["label_map"]
    assert nested == {"2": {"33": 0}}
    with pytest.raises(ConfigError, match="label_threshold") as err:
        build_product_relevance(_config(_csv(tmp_path), label_map=nested), ctx(tmp_path))
    assert '"2.33"' in str(err.value)
    # the quoted map form works (documented)
    quoted = OmegaConf.to_container(OmegaConf.from_dotlist(
        ['label_map={"1.0": 0, "2.33": 0, "2.67": 1, "3.0": 1}']))["label_map"]
    task = build_product_relevance(_config(_csv(tmp_path), label_map=quoted), ctx(tmp_path))
    assert {r.label for r in task.warm_rows} == {0, 1}


class ConstantClassifier:
    """Scores every query the same: the model's PR-AUC must equal the chance baseline."""

    def predict_proba(self, samples):
        return torch.full((len(samples), 2), 0.5)

    def loss(self, samples):
        return torch.full((len(samples),), math.log(2))


def test_evaluation_returns_baselines_and_standard_errors(tmp_path):
    task = build_product_relevance(ProductRelevanceConfig(preset="demo", demo_products=48,
                                                          eval_generate=0), ctx(tmp_path))
    metrics = task.evaluate(Components(task=task, classifier=ConstantClassifier()), "pretrain")
    assert metrics["cold/pr_auc"] == pytest.approx(metrics["baseline/chance/pr_auc"])
    for key in ("cold/pr_auc", "cold/roc_auc", "cold/accuracy", "cold/cls_loss"):
        assert f"{key}_se" in metrics and f"{key}_resolvable" in metrics
    assert metrics["cold/pr_auc_resolvable"] == pytest.approx(2 * 1.96 * metrics["cold/pr_auc_se"])
    # the demo's relevant queries are words of the title: no-training baselines see it
    assert metrics["baseline/word_overlap/pr_auc"] > 0.9 and metrics["baseline/bm25/pr_auc"] > 0.9
    assert task.baselines() is task.baselines()  # computed once per run
    again = task.evaluate(Components(task=task, classifier=ConstantClassifier()), "round-1")
    assert again == metrics  # deterministic


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} absent (shared data not mounted)")
def test_crowdflower_cold_split_baselines_beat_chance(tmp_path):
    task = build_product_relevance(ProductRelevanceConfig(preset="crowdflower",
                                                          path=str(SHARED)), ctx(tmp_path))
    out = task.baselines()
    assert out["baseline/word_overlap/pr_auc"] > out["baseline/chance/pr_auc"] + 0.05

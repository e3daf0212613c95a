"""The run's final summary line: model metrics with ±SE, baselines on their own line."""

from __future__ import annotations

from advx.cli import _summary_parts


def test_summary_shows_se_and_separates_baselines():
    model, baselines = _summary_parts({
        "cold/pr_auc": 0.71234, "cold/pr_auc_se": 0.0123, "cold/pr_auc_resolvable": 0.048,
        "cold/n": 384, "baseline/bm25/pr_auc": 0.6, "baseline/bm25/pr_auc_se": 0.01,
        "baseline/chance/roc_auc": 0.5, "note": "text",
    })
    assert model == "cold/pr_auc=0.7123±0.012  cold/n=384"
    assert baselines == "bm25/pr_auc=0.6±0.01  chance/roc_auc=0.5"

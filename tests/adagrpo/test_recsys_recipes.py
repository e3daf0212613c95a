"""The full-scale Beauty recipes and the study's compare file validate against the installed
components (no model is built, no data read)."""

from __future__ import annotations

import os
from pathlib import Path

from advx.compare.spec import check_conditions, load_compare
from advx.runner import prepare_recipe

ROOT = Path(__file__).resolve().parents[2]


def test_ranker_recipe_is_ranker_only():
    spec = prepare_recipe(ROOT / "recipes/ranker_beauty.yaml")
    assert spec.resolved["generator"] is None and spec.resolved["loop"]["rounds"] == 0
    ranker = spec.resolved["classifier"]
    assert (ranker["training"], ranker["loss"], ranker["select"]) == ("sequence", "ce", "valid")


def test_full_recipe_and_compare_file_validate(monkeypatch):
    spec = prepare_recipe(ROOT / "recipes/adagrpo_beauty_full.yaml")
    task = spec.resolved["task"]
    assert task["max_users"] == 0 and task["eval_users"] == 0
    assert task["semantic_ids"] == "rqvae" and task["constrained"] is True
    assert spec.resolved["optimizer"]["log_samples"] is True
    monkeypatch.chdir(ROOT)  # compare files name recipes relative to the repository root
    compare = load_compare(ROOT / "compares/adagrpo_beauty_full.yaml")
    check_conditions(compare)
    assert len(compare.seeds) >= 5 and compare.baseline == "nll"
    assert {"nll", "mix_0.5", "mix_2.0", "adagrpo_0.5", "adagrpo_2.0"} <= set(compare.conditions)
    assert os.path.basename(str(compare.conditions["nll"].recipe)) == "adagrpo_beauty_full.yaml"

"""The full-scale Beauty recipes and the study's compare file validate against the installed
components (no model is built, no data read)."""

from __future__ import annotations

import os
from pathlib import Path

from advx.compare.spec import check_conditions, load_compare
from advx.runner import prepare_recipe
from advx.use import eval_override_problem

ROOT = Path(__file__).resolve().parents[2]


def test_ranker_recipe_is_ranker_only():
    spec = prepare_recipe(ROOT / "recipes/ranker_beauty.yaml")
    assert spec.resolved["generator"] is None and spec.resolved["loop"]["rounds"] == 0
    ranker = spec.resolved["classifier"]
    assert (ranker["training"], ranker["loss"], ranker["select"]) == ("sequence", "ce", "valid")


def test_full_recipe_and_compare_file_validate(monkeypatch):
    spec = prepare_recipe(ROOT / "recipes/adagrpo_beauty_full.yaml")
    task = spec.resolved["task"]
    # every user trains; the rounds evaluate a fixed subset (monitor + curves), kept small
    assert task["max_users"] == 0 and 0 < task["eval_users"] <= 5000
    assert task["subset_seed"] == 0  # the task's own seed, not the run's: same users per seed
    loop = spec.resolved["loop"]
    assert loop["monitor"] == "valid/hr@10" and loop["keep_best"] is True
    assert task["semantic_ids"] == "rqvae" and task["constrained"] is True
    assert spec.resolved["optimizer"]["log_samples"] is True
    monkeypatch.chdir(ROOT)  # compare files name recipes relative to the repository root
    compare = load_compare(ROOT / "compares/adagrpo_beauty_full.yaml")
    check_conditions(compare)
    assert len(compare.seeds) >= 5 and compare.baseline == "nll"
    assert {"nll", "mix_0.5", "mix_2.0", "adagrpo_0.5", "adagrpo_2.0"} <= set(compare.conditions)
    assert os.path.basename(str(compare.conditions["nll"].recipe)) == "adagrpo_beauty_full.yaml"


def test_full_study_reports_all_user_reevaluations(monkeypatch):
    """The reported figures are the final and best checkpoints re-evaluated on every user
    (the compare's `evaluations:` all-final / all-best with task.eval_users=0): the compare
    runs and reads them, with the same overrides (so a best round that is the final one is a
    copy, not a second evaluation), and the override is one `advx eval` accepts."""
    monkeypatch.chdir(ROOT)
    compare = load_compare(ROOT / "compares/adagrpo_beauty_full.yaml")
    for name in ("all-final", "all-best"):
        assert f"eval:{name}/test/hr@10" in compare.metrics
        assert f"eval:{name}/test/ndcg@10" in compare.metrics
        assert compare.evaluations[name].overrides == ["task.eval_users=0"]
    assert compare.evaluations["all-final"].round == "final"
    assert compare.evaluations["all-best"].round == "best"
    assert not compare.primary.startswith("eval:") and compare.summary == "final"
    assert eval_override_problem("task.eval_users") is None


def test_the_former_name_of_eval_unconstrained_still_sets_it():
    from advx_recsys.task import NextItemConfig

    assert NextItemConfig(report_unconstrained=True).eval_unconstrained is True
    assert NextItemConfig().eval_unconstrained is False

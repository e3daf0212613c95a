"""The real-data presets (recipes/*_crowdflower.yaml) and the prepared studies
(compares/cold_start_crowdflower.yaml) load and
validate against the installed components, with the offline pretrained defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from advx.compare import check_conditions, load_compare
from advx.plugins import get_registry
from advx.recipe import load_recipe, validate_recipe
from advx.runner import prepare_recipe

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ["cls_no_augment_crowdflower", "sft_augment_crowdflower", "ppo_cls_loss_crowdflower"]


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # compare files name recipes relative to the working directory


@pytest.mark.parametrize("name", RECIPES)
def test_real_data_presets_use_the_pretrained_offline_models(name):
    recipe = validate_recipe(load_recipe(ROOT / "recipes" / f"{name}.yaml"), get_registry())
    plain = recipe.resolved
    assert plain["task"]["preset"] == "crowdflower"
    assert plain["classifier"]["model"] == "minilm"
    # measured: refits that do not lower the held-out warm loss are discarded (+0.031 PR-AUC)
    assert plain["classifier"]["start_competes"] is True
    if plain.get("generator"):
        assert plain["generator"]["model"] == "bert2bert:minilm"


def test_the_ppo_preset_pays_the_measured_best_reward_form_and_the_others_are_one_key_away():
    """The study measured novelty (summed) best; the fluency form stays one override away."""
    path = ROOT / "recipes" / "ppo_cls_loss_crowdflower.yaml"
    default = validate_recipe(load_recipe(path), get_registry()).resolved["reward"]
    assert (str(default["gen_term"]), default["gen_term_per_token"]) == ("novelty", False)
    fluency = ["reward.gen_term=fluency", "reward.gen_term_per_token=true"]
    other = validate_recipe(load_recipe(path, fluency), get_registry()).resolved["reward"]
    assert (str(other["gen_term"]), other["gen_term_per_token"]) == ("fluency", True)


def test_the_cold_start_study_is_a_b_three_reward_forms_and_two_filtered_from_one_start():
    spec = load_compare(ROOT / "compares" / "cold_start_crowdflower.yaml")
    check_conditions(spec)
    forms = {name: [o for o in c.overrides if o.startswith("reward.gen_term=")]
             for name, c in spec.conditions.items()}
    assert forms == {"a_no_augment": [], "b_sft_augment": [],
                     "c_novelty_sum": ["reward.gen_term=novelty"],
                     "c_fluency_per_token": ["reward.gen_term=fluency"],
                     "c_none": ["reward.gen_term=none"], "b_sft_filtered": [],
                     "c_novelty_filtered": ["reward.gen_term=novelty"]}
    filtered = {name for name, c in spec.conditions.items()
                if "loop.augment_min_label_p=0.5" in c.overrides}
    assert filtered == {"b_sft_filtered", "c_novelty_filtered"}
    assert spec.seeds == list(range(10))
    assert (spec.primary, spec.baseline, spec.summary) == ("cold/pr_auc", "a_no_augment", "final")
    assert spec.shared_start is not None and spec.shared_start.round == 0


@pytest.mark.parametrize("name", ["cold_start_crowdflower", "cold_start_negatives"])
def test_the_studies_pin_start_competes_as_their_cells_ran(name):
    """The presets' default became true after these studies' cells ran with false: each
    condition still runs as recorded, and only the *_start_competes conditions set true."""
    spec = load_compare(ROOT / "compares" / f"{name}.yaml")
    ran = {cname: prepare_recipe(c.recipe, c.cell_overrides(0)).resolved["classifier"]
           ["start_competes"] for cname, c in spec.conditions.items()}
    assert ran == {cname: cname.endswith("_start_competes") for cname in spec.conditions}
    start = prepare_recipe(spec.shared_start.recipe, spec.shared_start.cell_overrides(0))
    assert start.resolved["classifier"]["start_competes"] is False


def test_the_fit_negatives_study_pairs_the_presets_a_with_and_without_the_negatives():
    """Both conditions run the (a) preset under the rule its cells ran with (start_competes
    true); they differ in task.fit_other_negatives only, pinned on each side so neither
    changes meaning when the preset's default does."""
    spec = load_compare(ROOT / "compares" / "cold_start_fit_negatives.yaml")
    check_conditions(spec)
    ran = {name: prepare_recipe(c.recipe, c.cell_overrides(0)).resolved
           for name, c in spec.conditions.items()}
    assert {name: r["task"]["fit_other_negatives"] for name, r in ran.items()} == {
        "a_presets": 0.0, "a_negatives": 1.0}
    assert all(r["classifier"]["start_competes"] is True for r in ran.values())
    assert all(not r["loop"]["augment"] for r in ran.values())
    assert spec.shared_start is None and spec.seeds == list(range(10))
    assert (spec.primary, spec.baseline) == ("cold/pr_auc", "a_presets")


PRESET_OF = {"a_start_competes": "cls_no_augment_crowdflower",
             "b_start_competes": "sft_augment_crowdflower",
             "c_start_competes": "ppo_cls_loss_crowdflower"}


@pytest.mark.parametrize("condition", sorted(PRESET_OF))
def test_the_presets_as_shipped_are_the_conditions_the_negatives_study_measured(condition):
    """docs/results.md §1 reads the 10-seed (a)/(b)/(c) answer of the negatives study as the
    presets' own: that holds only while each preset resolves to its condition's recipe (the
    study's cells also set loop.checkpoint=false, which changes no result)."""
    spec = load_compare(ROOT / "compares" / "cold_start_negatives.yaml")
    cell = spec.conditions[condition]
    measured = dict(prepare_recipe(cell.recipe, cell.cell_overrides(0)).resolved)
    shipped = dict(prepare_recipe(f"recipes/{PRESET_OF[condition]}.yaml", ["seed=0"]).resolved)
    for recipe in (measured, shipped):
        recipe["loop"] = {k: v for k, v in recipe["loop"].items() if k != "checkpoint"}
    assert measured == shipped


def test_the_plain_study_runs_as_its_cells_ran_without_the_negatives():
    """compares/cold_start_crowdflower.yaml ran before the presets took the negatives and 4 SFT
    epochs: its conditions and start pin the data and epochs they ran with."""
    spec = load_compare(ROOT / "compares" / "cold_start_crowdflower.yaml")
    runs = [prepare_recipe(c.recipe, c.cell_overrides(0)).resolved
            for c in [*spec.conditions.values(), spec.shared_start]]
    for resolved in runs:
        assert resolved["task"]["fit_other_negatives"] == 0.0
        assert resolved["task"]["sft_other_negatives"] == 0.0
        if resolved.get("generator"):
            assert resolved["generator"]["epochs"] == 3

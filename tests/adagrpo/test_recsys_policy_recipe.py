"""recipes/policy_beauty.yaml is the full study's policy alone: it validates, trains no ranker
and runs no RL, and its task and generator blocks stay those of adagrpo_beauty_full.yaml."""

from __future__ import annotations

from pathlib import Path

from advx.runner import prepare_recipe

ROOT = Path(__file__).resolve().parents[2]


def test_policy_recipe_is_the_full_recipes_policy_alone():
    policy = prepare_recipe(ROOT / "recipes/policy_beauty.yaml").resolved
    full = prepare_recipe(ROOT / "recipes/adagrpo_beauty_full.yaml").resolved
    assert policy["classifier"] is None and policy["loop"]["rounds"] == 0
    assert policy["loop"]["pretrain_generator"] is True
    assert policy["generator"] == full["generator"]
    # the same data and item codes; only who is evaluated differs: the policy run evaluates
    # every user once, the study's rounds a fixed subset (all users in its re-evaluations)
    same = {k: v for k, v in policy["task"].items() if k != "eval_users"}
    assert same == {k: v for k, v in full["task"].items() if k != "eval_users"}
    assert 0 < full["task"]["eval_users"] <= 5000
    task, generator = policy["task"], policy["generator"]
    assert task["max_users"] == 0 and task["eval_users"] == 0 and task["constrained"] is True
    # the prompt holds every shown item: 4 tokens an item (3 levels + disambiguation) + sep
    assert generator["max_prompt_tokens"] == 4 * task["history"] + 1

"""The three Beauty recipes validate against the installed components and differ only in
the optimizer's gate / weight."""

from __future__ import annotations

from pathlib import Path

import pytest
from advx.runner import prepare_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize(
    ("name", "gate", "weight"),
    [("nll_beauty", "never", 0.0), ("grpo_mix_beauty", "always", 0.5),
     ("adagrpo_beauty", "adaptive", 0.5)],
)
def test_beauty_recipes_validate(name, gate, weight):
    spec = prepare_recipe(RECIPES / f"{name}.yaml")
    optimizer = spec.resolved["optimizer"]
    assert optimizer["name"] == "adagrpo"
    assert optimizer["gate"] == gate and optimizer["grpo_weight"] == weight
    assert spec.resolved["loop"]["monitor"] == "valid/hr@10"
    assert spec.resolved["loop"]["augment"] is False and spec.resolved["loop"]["classify"] is False
    assert spec.resolved["task"]["name"] == "next_item"
    assert spec.resolved["classifier"]["name"] == "ranker"


def test_recipe_override_of_the_gate_is_validated():
    from advx.errors import ConfigError

    with pytest.raises(ConfigError):
        prepare_recipe(RECIPES / "adagrpo_beauty.yaml", ["optimizer.gatee=always"])

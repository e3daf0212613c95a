"""Recipes: overrides, interpolation, and one test per bad-input case (exit 2, one message)."""

from __future__ import annotations

from pathlib import Path

import pytest
from advx.cli import app
from advx.errors import ConfigError
from advx.plugins import get_registry
from advx.recipe import load_recipe, validate_recipe
from typer.testing import CliRunner

runner = CliRunner()


def _fails(args: list[str], *needles: str) -> str:
    """Run the CLI, expect exit 2 with one message containing every needle, no traceback."""
    result = runner.invoke(app, args)
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    assert output.strip().startswith("error:"), output
    for needle in needles:
        assert needle in output, f"{needle!r} not in {output!r}"
    return output


def _write(tmp_path: Path, text: str, name: str = "r.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# ------------------------------------------------------------------- what works


def test_overrides_and_interpolation(pm, toy_recipe, tmp_path):
    text = toy_recipe.read_text().replace("beta: 0.05", "beta: '${optimizer.lr}'")
    cfg = load_recipe(_write(tmp_path, text), ["optimizer.lr=0.5", "loop.rounds=7"])
    recipe = validate_recipe(cfg, get_registry(pm))
    assert recipe.components["reward"].config.beta == 0.5  # interpolation follows the override
    assert recipe.loop.rounds == 7
    assert recipe.resolved["generator"]["sft_steps"] == 20  # defaults are filled in
    assert recipe.name == "toy" and recipe.seed == 3


def test_name_defaults_to_file_stem_and_logger_shorthand(pm, tmp_path):
    path = _write(tmp_path, "task: {name: toy_task}\nloggers: [toy_memory]\n", "my_exp.yaml")
    recipe = validate_recipe(load_recipe(path), get_registry(pm))
    assert recipe.name == "my_exp"
    assert [b.spec.name for b in recipe.loggers] == ["toy_memory"]
    assert recipe.components.keys() == {"task"}


# ------------------------------------------------------------------- bad input, one each


def test_error_unknown_component_suggests_closest(pm, toy_recipe):
    _fails(["run", str(toy_recipe), "generator.name=toy_unigrm"],
           "unknown generator 'toy_unigrm'", "Did you mean 'toy_unigram'?", "Available")


def test_error_unknown_key_names_path_and_allowed_keys(pm, toy_recipe):
    _fails(["run", str(toy_recipe), "reward.bta=0.1"],
           "'reward.bta'", "Did you mean 'beta'?", "Allowed keys: beta (float)")


def test_error_unknown_loop_key(pm, toy_recipe):
    _fails(["run", str(toy_recipe), "loop.round=2"], "'loop.round'", "Did you mean 'rounds'?")


def test_error_unknown_top_level_key(pm, toy_recipe):
    _fails(["run", str(toy_recipe), "optimiser.lr=1"], "'optimiser'", "Did you mean 'optimizer'?")


def test_error_wrong_type_names_expected_type(pm, toy_recipe):
    _fails(["run", str(toy_recipe), "optimizer.lr=fast"],
           "optimizer.lr: expected float, got 'fast'")


def test_error_wrong_type_in_loop(pm, toy_recipe):
    _fails(["run", str(toy_recipe), "loop.rounds=2.5"], "loop.rounds: expected int, got 2.5")


def test_error_bad_enum_value(pm, toy_recipe):
    _fails(["run", str(toy_recipe), "loop.augment_mode=merge"],
           "loop.augment_mode: 'merge' is not one of accumulate, replace")


def test_error_missing_file(pm, tmp_path):
    _fails(["run", str(tmp_path / "nope.yaml")], "recipe file not found", "nope.yaml")


def test_error_malformed_yaml_gives_file_and_line(pm, tmp_path):
    path = _write(tmp_path, "name: x\ntask: {name: toy_task\nloop:\n  rounds: 1\n")
    _fails(["run", path], "malformed YAML", f"{path}:3")


def test_error_malformed_override(pm, toy_recipe):
    _fails(["run", str(toy_recipe), "loop.rounds"], "not of the form key=value")


def test_error_missing_component_name(pm, toy_recipe):
    _fails(["run", str(toy_recipe), "reward.name=null"], "reward.name: required")


def test_error_unresolvable_interpolation(pm, tmp_path):
    path = _write(tmp_path, "task: {name: toy_task, n_real: '${loop.nothing}'}\n")
    _fails(["run", path], "cannot resolve interpolation")


def test_error_non_mapping_recipe(pm, tmp_path):
    _fails(["run", _write(tmp_path, "- a\n- b\n")], "must be a YAML mapping")


def test_error_resume_of_non_run_directory(pm, tmp_path):
    _fails(["run", "--resume", str(tmp_path)], "not an advx run directory")


def test_validation_error_is_a_config_error_in_python(pm, toy_recipe):
    with pytest.raises(ConfigError, match=r"unknown key 'task.size'"):
        validate_recipe(load_recipe(toy_recipe, ["task.size=3"]), get_registry(pm))


@pytest.mark.parametrize("override", ["loop.rounds=-1", "loop.batch_size=0",
                                      "loop.temperature=0", "loop.eval_every=0",
                                      "loop.augment_min_label_p=1.5"])
def test_error_out_of_range_loop_values(pm, toy_recipe, override):
    key = override.split("=")[0]
    _fails(["run", str(toy_recipe), override], f"{key}: expected")


def test_error_consistency_filter_without_a_classifier(pm, toy_recipe):
    # best-of-k needs a task whose prompts request a label; the toy task's do not
    _fails(["run", str(toy_recipe), "loop.augment_candidates=2"], "RequestsLabels",
           "set loop.augment_candidates=1")
    _fails(["run", str(toy_recipe), "loop.augment_candidates=0"],
           "loop.augment_candidates: expected an integer >= 1")
    _fails(["run", str(toy_recipe), "loop.augment_min_label_p=0.5", "classifier=null"],
           "loop.augment_min_label_p=0.5 filters the synthetic samples with the classifier",
           "set loop.augment_min_label_p=0")


def test_error_run_dir_already_holds_a_run(pm, toy_recipe, tmp_path):
    target = tmp_path / "run"
    CliRunner().invoke(app, ["run", str(toy_recipe), "loop.rounds=0", "--run-dir", str(target)])
    _fails(["run", str(toy_recipe), "--run-dir", str(target)], "already holds a run", "--resume")

"""Bad input through the ``advx`` CLI: each case is exit code 2 and one message, no traceback.

Covers the recipe file itself (encoding, emptiness, no task), values validated up front
(seed, run name, enum choices), the error printer (user text is never rich markup) and
plugin loading (ADVX_LOAD_PLUGINS, misspelt hook implementations)."""

from __future__ import annotations

import types

import advx
import advx.plugins
import pytest
from advx.cli import app
from advx.errors import PluginError, did_you_mean
from advx.plugins import get_plugin_manager, get_registry
from typer.testing import CliRunner

runner = CliRunner()


def _fails(args: list[str], *needles: str) -> str:
    """Exit 2, one ``error:`` message containing every needle, no traceback."""
    result = runner.invoke(app, args)
    output = result.output
    assert result.exit_code == 2, output
    assert isinstance(result.exception, SystemExit), result.exception  # not a crash
    assert "Traceback" not in output
    assert output.startswith("error:") and output.count("error:") == 1, output
    for needle in needles:
        assert needle in output, f"{needle!r} not in {output!r}"
    return output


# ------------------------------------------------------------------- the recipe file


def test_a_recipe_that_is_not_utf8_is_one_message(pm, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("task: {name: toy_task}\ndescription: caf\xe9\n".encode("latin-1"))
    _fails(["run", str(path)], f"recipe {path} is not UTF-8 text", "save it as UTF-8")


def test_recipes_lists_a_non_utf8_file_without_crashing(tmp_path):
    (tmp_path / "latin1.yaml").write_bytes(b"description: caf\xe9\n")
    result = runner.invoke(app, ["recipes", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "latin1.yaml" in result.output and "(not UTF-8)" in result.output


@pytest.mark.parametrize("text", ["42\n", "[a, b]\n"])
def test_a_recipe_that_is_not_a_mapping_is_one_message(pm, tmp_path, text):
    path = tmp_path / "scalar.yaml"
    path.write_text(text)
    _fails(["run", str(path)], "must be a YAML mapping")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_an_empty_recipe_is_an_error_not_four_idle_rounds(pm, tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    _fails(["run", str(path), "--runs-root", str(tmp_path / "runs")], "is empty", "task:")
    assert not (tmp_path / "runs").exists()


def test_a_recipe_without_a_task_is_an_error(pm, tmp_path):
    path = tmp_path / "notask.yaml"
    path.write_text("loop: {rounds: 1}\n")
    _fails(["run", str(path), "--runs-root", str(tmp_path / "runs")],
           "task: required", "Available tasks: toy_task")
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------- values checked up front


@pytest.mark.parametrize("seed", [str(2**63), str(2**64 + 5), "-1"])
def test_a_seed_outside_the_signed_64_bit_range_is_an_error(pm, toy_recipe, tmp_path, seed):
    _fails(["run", str(toy_recipe), f"seed={seed}", "--runs-root", str(tmp_path)],
           "seed: expected an integer in [0, 2**63 - 1]", seed)


def test_the_largest_seed_is_accepted(pm, toy_recipe, tmp_path):
    result = runner.invoke(app, ["run", str(toy_recipe), f"seed={2**63 - 1}", "loop.rounds=0",
                                 "-q", "--runs-root", str(tmp_path)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("name", ["../../escaped", "a/b", "..", ".", "''", "a\\\\b"])
def test_a_run_name_that_is_not_one_folder_is_refused(pm, toy_recipe, tmp_path, name):
    runs = tmp_path / "deep" / "runs"
    _fails(["run", str(toy_recipe), f"name={name}", "--runs-root", str(runs)],
           "cannot name a run folder")
    assert list(tmp_path.rglob("summary.json")) == [] and not runs.exists()


def test_an_enum_choice_names_key_value_and_choices(pm, toy_recipe):
    _fails(["run", str(toy_recipe), "loop.monitor_mode=biggest"],
           "loop.monitor_mode: 'biggest' is not one of max, min")


def test_enum_choices_reach_the_run_as_plain_strings(pm, toy_recipe, tmp_path):
    from advx.recipe import load_recipe, validate_recipe

    recipe = validate_recipe(load_recipe(toy_recipe, ["loop.augment_mode=replace"]),
                             get_registry(pm))
    assert recipe.loop.augment_mode == "replace"
    assert recipe.resolved["loop"]["augment_mode"] == "replace"
    assert type(recipe.resolved["loop"]["augment_mode"]) is str  # recipe.yaml stays plain


# ------------------------------------------------------------------- the error printer


def test_no_arguments_shows_the_bracketed_usage(pm):
    _fails(["run"], "advx run recipes/<name>.yaml [key=value ...]")


def test_a_path_with_markup_is_reported_exactly(pm, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _fails(["run", "recipes/[red]oops.yaml"], "recipe file not found: recipes/[red]oops.yaml")


def test_a_message_with_a_closing_tag_does_not_crash_the_printer(pm, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _fails(["run", "recipes/[/x]oops.yaml"], "recipes/[/x]oops.yaml")


def test_did_you_mean():
    assert did_you_mean("rewrd", ["task", "reward", "loop"]) == " Did you mean 'reward'?"
    assert did_you_mean("zzz", ["task", "reward"]) == ""
    assert did_you_mean(3, []) == ""


# ------------------------------------------------------------------- plugin loading


@pytest.fixture
def fresh_manager(monkeypatch):
    """Each test builds its own plugin manager; the process one is rebuilt afterwards."""
    monkeypatch.delenv("ADVX_TRACE_PLUGINS", raising=False)
    yield
    advx.plugins.reset_plugin_manager()


@pytest.mark.parametrize("value", ["", " , ", ","])
def test_an_empty_load_plugins_list_is_an_error(fresh_manager, monkeypatch, value):
    monkeypatch.setenv("ADVX_LOAD_PLUGINS", value)
    with pytest.raises(PluginError) as info:
        get_plugin_manager(reload=True)
    assert "ADVX_LOAD_PLUGINS is set but names no plugin" in str(info.value)
    assert "Installed: " in str(info.value) and "loggers" in str(info.value)


def test_an_unknown_load_plugins_name_names_it_and_the_installed_ones(fresh_manager,
                                                                       monkeypatch):
    monkeypatch.setenv("ADVX_LOAD_PLUGINS", "loggers,loggres,nothere")
    with pytest.raises(PluginError) as info:
        get_plugin_manager(reload=True)
    message = str(info.value)
    assert "'loggres', 'nothere'" in message and "Did you mean 'loggers'?" in message
    assert "Installed: " in message and "seq2seq" in message


def test_load_plugins_errors_reach_the_cli_as_exit_2(fresh_manager, monkeypatch):
    advx.plugins.reset_plugin_manager()
    monkeypatch.setenv("ADVX_LOAD_PLUGINS", "nothere")
    _fails(["plugins"], "ADVX_LOAD_PLUGINS names 'nothere'")


def _misspelt_plugin() -> types.SimpleNamespace:
    @advx.hookimpl
    def advx_register_rewardz(register):  # the typo this test is about
        raise AssertionError("never called")

    return types.SimpleNamespace(advx_register_rewardz=advx_register_rewardz)


def test_a_misspelt_hook_implementation_is_a_plugin_error(fresh_manager, monkeypatch):
    monkeypatch.setenv("ADVX_LOAD_PLUGINS", "loggers")
    pm = get_plugin_manager(reload=True)
    pm.register(_misspelt_plugin(), name="typo_plugin")
    with pytest.raises(PluginError) as info:
        get_registry(pm)
    message = str(info.value)
    assert "plugin 'typo_plugin' implements 'advx_register_rewardz'" in message
    assert "Did you mean 'advx_register_rewards'?" in message


def test_a_misspelt_hook_in_an_entry_point_fails_when_loading(fresh_manager, monkeypatch):
    class _EntryPoint:
        name, value, dist = "typo", "typo_module", None

        def load(self):
            return _misspelt_plugin()

    monkeypatch.delenv("ADVX_LOAD_PLUGINS", raising=False)
    monkeypatch.setattr(advx.plugins, "_advx_entry_points", lambda: [_EntryPoint()])
    with pytest.raises(PluginError, match="'typo' implements 'advx_register_rewardz'"):
        get_plugin_manager(reload=True)


def test_the_manager_keeps_distributions_in_its_own_attribute(fresh_manager, monkeypatch):
    monkeypatch.setenv("ADVX_LOAD_PLUGINS", "loggers")
    pm = get_plugin_manager(reload=True)
    assert isinstance(pm, advx.plugins.AdvxPluginManager)
    assert pm.distributions == {"loggers": "advx"}
    assert not any(name.startswith("_advx") for name in vars(pm))


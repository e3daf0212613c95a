"""The plugin manager: entry points, ADVX_LOAD_PLUGINS, ADVX_TRACE_PLUGINS, clashes, failures;
and the built-in loggers plugin."""

from __future__ import annotations

import csv
import json
import types
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import advx
import advx.plugins
import pytest
import tomllib
from advx.errors import PluginError
from advx.plugins import get_plugin_manager, get_registry
from advx.runner import run_recipe

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class _Cfg:
    pass


class _FakeDist:
    def __init__(self, name: str) -> None:
        self.name = name


class _FakeEntryPoint:
    """What importlib.metadata yields, for plugins that are not installed."""

    def __init__(self, name: str, module: object, dist: str) -> None:
        self.name, self.value, self.dist = name, f"fake_{name}", _FakeDist(dist)
        self._module = module

    def load(self):
        if isinstance(self._module, Exception):
            raise self._module
        return self._module


def _plugin(name: str) -> types.SimpleNamespace:
    @advx.hookimpl
    def advx_register_rewards(register):
        register(name, lambda config, ctx: None, _Cfg)

    return types.SimpleNamespace(advx_register_rewards=advx_register_rewards)


@pytest.fixture
def fake_entry_points(monkeypatch):
    """Replace the installed entry points with the given fakes; restore the manager after."""
    monkeypatch.delenv("ADVX_LOAD_PLUGINS", raising=False)

    def install(*eps):
        monkeypatch.setattr(advx.plugins, "_advx_entry_points", lambda: list(eps))
        return get_plugin_manager(reload=True)

    yield install
    advx.plugins.reset_plugin_manager()


def test_pyproject_entry_points_all_load():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    installed = {ep.name: ep for ep in entry_points(group="advx")}
    for name, value in declared["advx"].items():
        assert name in installed, f"entry point {name} not installed: re-run pip install -e ."
        assert installed[name].value == value
        module = installed[name].load()
        assert isinstance(module, types.ModuleType), f"{name} must name a module"


def test_console_script_is_declared():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"advx": "advx.cli:main"}
    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "advx"]
    assert callable(ep.load())


def test_load_plugins_allowlist(monkeypatch):
    monkeypatch.setenv("ADVX_LOAD_PLUGINS", "loggers")
    pm = get_plugin_manager(reload=True)
    try:
        assert [name for name, _ in pm.list_name_plugin()] == ["loggers"]
        assert get_registry(pm).names("logger") == ["console", "csv"]
        assert get_registry(pm).names("generator") == []
    finally:
        advx.plugins.reset_plugin_manager()


def test_trace_plugins_prints_hook_calls(monkeypatch, capsys):
    monkeypatch.setenv("ADVX_LOAD_PLUGINS", "loggers")
    monkeypatch.setenv("ADVX_TRACE_PLUGINS", "1")
    try:
        get_registry(get_plugin_manager(reload=True))
    finally:
        advx.plugins.reset_plugin_manager()
    err = capsys.readouterr().err
    assert "[advx] advx_register_loggers(register) -> loggers" in err


def test_trace_plugins_prints_lifecycle_calls(monkeypatch, capsys, toy_recipe, tmp_path):
    monkeypatch.setenv("ADVX_LOAD_PLUGINS", "loggers")
    monkeypatch.setenv("ADVX_TRACE_PLUGINS", "1")
    from core_toys import ToyPlugin

    try:
        get_plugin_manager(reload=True).register(ToyPlugin(), name="toys")
        run_recipe(toy_recipe, ["loop.rounds=1"], runs_root=tmp_path)
    finally:
        advx.plugins.reset_plugin_manager()
    err = capsys.readouterr().err
    assert "[advx] advx_on_run_start(run) ->" in err
    assert err.count("[advx] advx_on_step_end(run, round, step, metrics)") == 3
    assert "[advx] advx_on_run_end(run, summary)" in err


def test_duplicate_component_names_both_distributions(fake_entry_points):
    pm = fake_entry_points(_FakeEntryPoint("one", _plugin("same"), "dist-one"),
                           _FakeEntryPoint("two", _plugin("same"), "dist-two"))
    with pytest.raises(PluginError, match="registered twice") as info:
        get_registry(pm)
    assert "dist-one" in str(info.value) and "dist-two" in str(info.value)


def test_plugin_that_fails_to_import_is_named(fake_entry_points):
    with pytest.raises(PluginError, match=r"plugin 'broken' \(distribution 'dist-b'") as info:
        fake_entry_points(_FakeEntryPoint("broken", ImportError("no module x"), "dist-b"))
    assert "no module x" in str(info.value)


def test_plugin_that_fails_to_register_is_named(fake_entry_points):
    @advx.hookimpl
    def advx_register_tasks(register):
        raise RuntimeError("boom")

    pm = fake_entry_points(_FakeEntryPoint(
        "bad", types.SimpleNamespace(advx_register_tasks=advx_register_tasks), "dist-bad"))
    with pytest.raises(PluginError, match=r"plugin 'bad' \(distribution 'dist-bad'\).*boom"):
        get_registry(pm)


def test_config_class_must_be_a_dataclass(fake_entry_points):
    @advx.hookimpl
    def advx_register_tasks(register):
        register("t", lambda config, ctx: None, dict)

    pm = fake_entry_points(_FakeEntryPoint(
        "nd", types.SimpleNamespace(advx_register_tasks=advx_register_tasks), "dist-nd"))
    with pytest.raises(PluginError, match="not a dataclass"):
        get_registry(pm)


# ------------------------------------------------------------------- built-in loggers


def test_csv_and_console_loggers(pm, toy_recipe, tmp_path, capsys):
    overrides = ["loggers=[{name: csv}, {name: console, every: 3, keys: [reward/]}]",
                 "loop.rounds=2"]
    result = run_recipe(toy_recipe, overrides, runs_root=tmp_path)
    with open(result.run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    jsonl = (result.run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == len(jsonl) == 3 + 6
    assert {"reward/total", "eval/p_real", "kind", "round"} <= set(rows[0])
    assert float(rows[-1]["eval/p_real"]) == pytest.approx(json.loads(jsonl[-1])["eval/p_real"])
    out = capsys.readouterr().out
    assert "[step r1 s3] reward/total=" in out and "[step r1 s1]" not in out
    assert "optim/loss" not in out


def test_csv_logger_drops_redone_rounds_on_resume(pm, toy_recipe, tmp_path):
    class Stop(Exception):
        pass

    class StopInRound2:
        @advx.hookimpl
        def advx_on_step_end(self, run, round, step, metrics):
            if round == 2 and step == 2:
                raise Stop

    target = tmp_path / "run"
    with pytest.raises(Stop):
        run_recipe(toy_recipe, ["loggers=[csv]"], run_dir=target, plugins=[StopInRound2()])
    run_recipe(None, resume=target)
    with open(target / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["kind"], r["round"], r["step"]) for r in rows] == [
        (json.loads(x)["kind"], str(json.loads(x)["round"]), str(json.loads(x).get("step", "")))
        for x in (target / "metrics.jsonl").read_text().splitlines()
    ]


def test_every_repository_recipe_validates_against_the_installed_plugins(monkeypatch):
    """A recipe in recipes/ that names a missing component or key fails here, not in a demo."""
    from advx.recipe import load_recipe, recipe_description, validate_recipe

    recipes = sorted((ROOT / "recipes").glob("*.yaml"))
    if not recipes:
        pytest.skip("no recipes in recipes/ yet")
    monkeypatch.delenv("ADVX_LOAD_PLUGINS", raising=False)
    try:
        registry = get_registry(get_plugin_manager(reload=True))
        for path in recipes:
            validate_recipe(load_recipe(path), registry)
            assert recipe_description(path), f"{path.name} has no one-line description:"
    finally:
        advx.plugins.reset_plugin_manager()

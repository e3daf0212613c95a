"""The ``advx`` CLI through typer's runner: run, resume, plugins, recipes, --help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from advx.cli import app
from typer.testing import CliRunner

runner = CliRunner()


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def _all_commands(group, path: tuple[str, ...] = ()):
    yield path
    if hasattr(group, "commands"):
        for name, command in group.commands.items():
            yield from _all_commands(command, (*path, name))


def test_help_everywhere():
    commands = list(_all_commands(typer.main.get_command(app)))
    assert {("run",), ("plugins",), ("recipes",), ("sweep",)} <= set(commands)
    for path in commands:
        output = _ok([*path, "--help"])
        assert "Usage:" in output


def test_version():
    assert _ok(["--version"]).startswith("advx ")


def test_run_prints_run_directory_and_plain_progress(pm, toy_recipe, tmp_path):
    output = _ok(["run", str(toy_recipe), "loop.rounds=2", "--runs-root", str(tmp_path)])
    run_dir = Path(output.split("run directory:")[1].split()[0])
    assert run_dir.parent == tmp_path / "toy"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["rounds_completed"] == 2
    # not a TTY: the progress display degrades to plain lines with the reward terms
    assert "round 1/2  step 1/3  total=" in output and "disc_prob=" in output
    assert "best by eval/p_real" in output


def test_run_quiet_and_run_dir(pm, toy_recipe, tmp_path):
    target = tmp_path / "exact"
    output = _ok(["run", str(toy_recipe), "loop.rounds=1", "--run-dir", str(target), "-q"])
    assert "step 1/3" not in output
    assert (target / "summary.json").is_file()


def test_resume_through_cli_extends_the_run(pm, toy_recipe, tmp_path):
    target = tmp_path / "run"
    _ok(["run", str(toy_recipe), "loop.rounds=1", "--run-dir", str(target), "-q"])
    output = _ok(["run", "--resume", str(target), "loop.rounds=2", "-q"])
    assert str(target) in output
    summary = json.loads((target / "summary.json").read_text())
    assert summary["resumed_from_round"] == 1 and summary["rounds_completed"] == 2


def test_resume_with_recipe_is_an_error(pm, toy_recipe, tmp_path):
    result = runner.invoke(app, ["run", str(toy_recipe), "--resume", str(tmp_path)])
    assert result.exit_code == 2 and "give no recipe" in result.output


def test_run_without_recipe_is_an_error(pm):
    result = runner.invoke(app, ["run"])
    assert result.exit_code == 2 and "missing RECIPE" in result.output


def test_plugins_lists_components_with_distribution(pm):
    output = _ok(["plugins"])
    rows = [line for line in output.splitlines() if "toy_unigram" in line]
    assert rows and "generator" in rows[0] and "<registered in process>" in rows[0]
    csv_row = next(line for line in output.splitlines() if " csv " in line)
    assert "logger" in csv_row and "advx" in csv_row
    assert "plugins loaded:" in output and "toys" in output


def test_recipes_lists_descriptions(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\ndescription: first   recipe\n")
    (tmp_path / "b.yaml").write_text("name: b\n")
    output = _ok(["recipes", "--dir", str(tmp_path)])
    assert "a.yaml" in output and "first recipe" in output and "b.yaml" in output


def test_recipes_missing_folder(tmp_path):
    result = runner.invoke(app, ["recipes", "--dir", str(tmp_path / "none")])
    assert result.exit_code == 2 and "recipe folder not found" in result.output


def test_repository_recipes_are_listed():
    root = Path(__file__).resolve().parents[2]
    if not list((root / "recipes").glob("*.yaml")):
        pytest.skip("no recipes committed yet")
    output = _ok(["recipes", "--dir", str(root / "recipes")])
    assert "ppo_cls_loss" in output or ".yaml" in output


def test_run_accepts_a_recipe_name_from_recipes_folder(pm, toy_recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "toy2.yaml").write_text(toy_recipe.read_text())
    output = _ok(["run", "toy2", "loop.rounds=0", "-q", "--runs-root", str(tmp_path / "r")])
    assert "run directory:" in output

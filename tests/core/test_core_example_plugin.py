"""A third-party plugin, pip-installed: found through its entry point, listed by
`advx plugins`, usable from a recipe; uninstalled afterwards."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import advx.plugins
import pytest
from advx.cli import app
from core_toys import ToyPlugin
from typer.testing import CliRunner

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "advx-example-plugin"


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "-q", "--disable-pip-version-check", *args],
                   check=True, capture_output=True, timeout=240)


@pytest.fixture
def example_installed(tmp_path, monkeypatch):
    source = tmp_path / "advx-example-plugin"
    shutil.copytree(EXAMPLE, source)  # pip builds in the tree: keep the repository clean
    _pip("install", "--no-deps", "--no-build-isolation", "--no-index", str(source))
    importlib.invalidate_caches()
    try:
        monkeypatch.setenv("ADVX_LOAD_PLUGINS", "loggers,example")
        pm = advx.plugins.get_plugin_manager(reload=True)
        pm.register(ToyPlugin(), name="toys")
        yield pm
    finally:
        advx.plugins.reset_plugin_manager()
        _pip("uninstall", "-y", "advx-example-plugin")
        sys.modules.pop("advx_example_plugin", None)


def test_example_plugin_installs_lists_and_runs(example_installed, toy_recipe, tmp_path):
    runner = CliRunner()
    listing = runner.invoke(app, ["plugins"])
    assert listing.exit_code == 0, listing.output
    row = next(line for line in listing.output.splitlines() if " constant " in line)
    assert "reward" in row and "advx-example-plugin" in row and "example" in row

    result = runner.invoke(app, ["run", str(toy_recipe), "reward=null", "reward.name=constant",
                                 "reward.value=0.25", "loop.rounds=1", "--run-dir",
                                 str(tmp_path / "run"), "-q"])
    assert result.exit_code == 0, result.output
    steps = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if '"step"' in x]
    assert steps and all(s["reward/constant"] == 0.25 for s in steps)
    assert all(s["reward/total"] == 0.25 for s in steps)

    typo = runner.invoke(app, ["run", str(toy_recipe), "reward=null", "reward.name=constant",
                               "reward.valu=2"])
    assert typo.exit_code == 2 and "Did you mean 'value'?" in typo.output

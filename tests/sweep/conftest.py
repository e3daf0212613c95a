"""Fixtures for the sweep tests: a toy recipe whose trials are real advx runs of a toy task
(``sweep_toy.py``) that take milliseconds, in a fresh plugin manager that loads no built-in
plugin (so the tests neither wait for nor depend on the model plugins)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import advx.plugins  # noqa: E402
import sweep_toy  # noqa: E402
from sweep_helpers import TOY_RECIPE  # noqa: E402


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """Work in ``tmp_path`` with ``toy.yaml`` there and only the toy plugin loaded."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADVX_LOAD_PLUGINS", "loggers")  # only the light built-in loggers
    monkeypatch.setenv("PYTHONPATH", f"{HERE}:{Path.cwd()}")
    advx.plugins.reset_plugin_manager()  # tests/conftest.py resets it afterwards
    advx.plugins.get_plugin_manager().register(sweep_toy, name="sweep_toy")
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(TOY_RECIPE, sort_keys=False))
    return tmp_path

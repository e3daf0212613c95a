"""Fixtures for the compare tests: a toy recipe whose runs take milliseconds
(``compare_toy.py``), in a fresh plugin manager that loads no built-in plugin."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import advx.plugins  # noqa: E402
import compare_toy  # noqa: E402
from compare_helpers import TOY_RECIPE  # noqa: E402


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """Work in ``tmp_path`` with ``toy.yaml`` there and only the toy plugin loaded."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADVX_LOAD_PLUGINS", "loggers")  # only the console/CSV loggers
    # Worker subprocesses import this checkout's advx and the toy plugin.
    core = Path(advx.__file__).resolve().parents[1]
    monkeypatch.setenv("PYTHONPATH", f"{HERE}:{core}:{core.parent / 'plugins'}:{Path.cwd()}")
    advx.plugins.reset_plugin_manager()  # tests/conftest.py resets it afterwards
    advx.plugins.get_plugin_manager().register(compare_toy, name="compare_toy")
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(TOY_RECIPE, sort_keys=False))
    return tmp_path

"""Fixtures of the core tests: the real plugin manager, restricted to the core's own
plugins (so a half-written plugin elsewhere cannot break these tests), plus the toys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import advx.plugins
import pluggy
import pytest
from core_toys import CALLS, ORDER, TOY_RECIPE, ToyLogger, ToyPlugin


@pytest.fixture
def pm(monkeypatch: pytest.MonkeyPatch) -> Iterator[pluggy.PluginManager]:
    """The process plugin manager, loading only the `loggers` entry point, with the toys."""
    monkeypatch.setenv("ADVX_LOAD_PLUGINS", "loggers")
    monkeypatch.delenv("ADVX_TRACE_PLUGINS", raising=False)
    manager = advx.plugins.get_plugin_manager(reload=True)
    manager.register(ToyPlugin(), name="toys")
    CALLS.clear()
    ORDER.clear()
    ToyLogger.RECORDS.clear()
    yield manager
    advx.plugins.reset_plugin_manager()


@pytest.fixture
def toy_recipe(tmp_path: Path) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(TOY_RECIPE)
    return path

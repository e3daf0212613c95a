"""Fixtures of the tracker tests: the core's toy components plus the trackers plugin, in the
real plugin manager (only the `loggers` entry point loaded, as in tests/core), and every
tracker's home/cache folders kept inside the test's tmp_path."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CORE_TESTS = Path(__file__).resolve().parents[1] / "core"
if str(CORE_TESTS) not in sys.path:
    sys.path.insert(0, str(CORE_TESTS))

import advx.plugins  # noqa: E402
import advx_trackers  # noqa: E402
import pluggy  # noqa: E402
from core_toys import TOY_RECIPE, ToyPlugin  # noqa: E402


@pytest.fixture
def pm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pluggy.PluginManager]:
    monkeypatch.setenv("ADVX_LOAD_PLUGINS", "loggers")
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home" / var.lower()))
    monkeypatch.setenv("WANDB_MODE", "offline")  # belt and braces: never the network
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    manager = advx.plugins.get_plugin_manager(reload=True)
    manager.register(ToyPlugin(), name="toys")
    manager.register(advx_trackers, name="trackers")
    yield manager
    advx.plugins.reset_plugin_manager()


@pytest.fixture
def toy_recipe(tmp_path: Path):
    """Write the toy recipe with the given loggers; returns its path."""

    def write(loggers: str, extra: str = "") -> Path:
        text = TOY_RECIPE.replace("loggers: [{name: toy_memory}]", f"loggers: {loggers}")
        text = text.replace("rounds: 3", "rounds: 2") + extra
        path = tmp_path / "toy.yaml"
        path.write_text(text)
        return path

    return write

"""Fixtures of the reward-function tests: the core's toys, the pyreward plugin and (for the
MC rollout) the seqgan plugin in the real plugin manager; toy_rewards.py importable."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "core"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import advx.plugins  # noqa: E402
import advx_pyreward  # noqa: E402
import pluggy  # noqa: E402
import toy_rewards  # noqa: E402
from core_toys import ToyPlugin  # noqa: E402


@pytest.fixture
def pm(monkeypatch: pytest.MonkeyPatch) -> Iterator[pluggy.PluginManager]:
    monkeypatch.setenv("ADVX_LOAD_PLUGINS", "loggers,seqgan")
    manager = advx.plugins.get_plugin_manager(reload=True)
    manager.register(ToyPlugin(), name="toys")
    if not manager.is_registered(advx_pyreward) and manager.get_plugin("pyreward") is None:
        manager.register(advx_pyreward, name="pyreward")
    toy_rewards.SEEN.clear()
    yield manager
    advx.plugins.reset_plugin_manager()

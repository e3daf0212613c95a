"""Fixtures of the `advx eval/export/generate/predict` and `run --from` tests: one tiny
cold-start run (seq2seq generator with a value head, T5-encoder classifier) shared by the
module's tests, and the core's toy components for the fast --from tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import advx.plugins
import pluggy
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))

from core_toys import TOY_RECIPE, ToyPlugin

REPO = Path(__file__).resolve().parents[2]
COLD_START = REPO / "recipes/ppo_cls_loss.yaml"
TINY = ["task.demo_products=36", "task.eval_generate=8", "generator.epochs=1",
        "generator.d_model=32", "generator.d_ff=64", "classifier.epochs=1",
        "classifier.d_model=32", "classifier.d_ff=64", "loop.rounds=2", "loop.rl_steps=2",
        "loop.batch_size=4", "optimizer.epochs=1", "loop.monitor=cold/pr_auc"]


@pytest.fixture(scope="session")
def cold_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-round cold-start run (checkpoints of rounds 1 and 2, best kept)."""
    from advx.cli import app

    run_dir = tmp_path_factory.mktemp("cold") / "run"
    result = CliRunner().invoke(app, ["run", str(COLD_START), *TINY, "--run-dir", str(run_dir),
                                      "-q"])
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture
def toy_pm(monkeypatch: pytest.MonkeyPatch) -> Iterator[pluggy.PluginManager]:
    """The plugin manager with only the loggers entry point and the core's toys."""
    monkeypatch.setenv("ADVX_LOAD_PLUGINS", "loggers")
    manager = advx.plugins.get_plugin_manager(reload=True)
    manager.register(ToyPlugin(), name="toys")
    yield manager
    advx.plugins.reset_plugin_manager()


@pytest.fixture
def toy_recipe(tmp_path: Path) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(TOY_RECIPE)
    return path

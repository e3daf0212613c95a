"""Fixtures for the compare tests: a toy recipe whose runs take milliseconds
(``compare_toy.py``), in a fresh plugin manager that loads no built-in plugin, and a writer
of compare files."""

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

TOY_RECIPE = {
    "name": "compare_toy",
    "seed": 0,
    "task": {"name": "compare_toy", "rounds": "${loop.rounds}"},
    "reward": {"name": "compare_toy", "gain": 1.0},
    "loop": {
        "rounds": 3, "rl_steps": 0, "pretrain_generator": False, "pretrain_classifier": False,
        "augment": False, "classify": False, "use_reference": False, "checkpoint": False,
        "save_samples": False,
    },
}

BASE_COMPARE = {
    "description": "toy: gain 1 vs gain 2",
    "conditions": {
        "low": {"recipe": "toy.yaml"},
        "high": {"recipe": "toy.yaml", "overrides": ["reward.gain=2.0"]},
    },
    "seeds": 3,
    "metrics": ["toy/score", "toy/gain"],
    "primary": "toy/score",
    "baseline": "low",
    "plugins": ["compare_toy"],
}


def write_compare(folder: Path, name: str = "toy_cmp", **changes) -> Path:
    """A compare file: BASE_COMPARE with top-level keys replaced (None deletes a key)."""
    data = {"name": name, **BASE_COMPARE, **changes}
    data = {k: v for k, v in data.items() if v is not None}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """Work in ``tmp_path`` with ``toy.yaml`` there and only the toy plugin loaded."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADVX_LOAD_PLUGINS", "")  # no entry point: built-ins stay unloaded
    # Worker subprocesses import this checkout's advx and the toy plugin.
    core = Path(advx.__file__).resolve().parents[1]
    monkeypatch.setenv("PYTHONPATH", f"{HERE}:{core}:{core.parent / 'plugins'}:{Path.cwd()}")
    monkeypatch.setattr(advx.plugins, "_PM", None)  # a fresh manager, restored afterwards
    advx.plugins.get_plugin_manager().register(compare_toy, name="compare_toy")
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(TOY_RECIPE, sort_keys=False))
    return tmp_path

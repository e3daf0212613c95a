"""Shared data of the sweep tests: the toy recipe and a sweep-file writer."""

from __future__ import annotations

from pathlib import Path

import yaml

TOY_RECIPE = {
    "name": "sweep_toy",
    "seed": 0,
    "task": {"name": "sweep_toy", "rounds": "${loop.rounds}"},
    "reward": {"name": "sweep_toy", "alpha": 0.5, "beta": 0.1},
    "loop": {
        "rounds": 3, "rl_steps": 0, "pretrain_generator": False, "pretrain_classifier": False,
        "augment": False, "classify": False, "use_reference": False, "checkpoint": False,
        "save_samples": False,
    },
}

BASE_SWEEP = {
    "recipe": "toy.yaml",
    "space": {
        "reward.alpha": {"type": "float", "low": 0.0, "high": 1.0},
        "reward.beta": {"type": "float", "low": 1.0e-3, "high": 1.0, "log": True},
    },
    "objective": {"metric": "toy/score", "direction": "maximize"},
    "sampler": {"name": "tpe", "seed": 0, "n_startup_trials": 3},
    "pruner": {"name": "none"},
    "n_trials": 4,
    "plugins": ["sweep_toy"],
}


def write_sweep(folder: Path, name: str = "toy_ab", **changes) -> Path:
    """A sweep file: BASE_SWEEP with top-level keys replaced (None deletes a key)."""
    data = {"name": name, **BASE_SWEEP, **changes}
    data = {k: v for k, v in data.items() if v is not None}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path

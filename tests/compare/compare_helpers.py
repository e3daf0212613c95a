"""Shared data of the compare tests: the toy recipe and a compare-file writer (a module of
its own, not conftest: several test folders have a conftest module)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

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


def evaluated_seeds(marks: Path, gain: str) -> list[int]:
    """The seeds whose runs with ``reward.gain=gain`` evaluated round 0 (the toy leaves a
    marker file per evaluation in the folder ``task.marker`` names)."""
    if not marks.is_dir():
        return []
    return sorted(int(m.name.split("-")[0].removeprefix("seed")) for m in marks.iterdir()
                  if f"-gain{gain}-round0" in m.name)


def compare_worker(folder: Path, path: Path, *extra: str) -> subprocess.Popen:
    """``python -m advx.compare run PATH`` as a separate process in ``folder`` (one thread)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "advx.compare", "run", str(path), *extra],
                            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def kill_when(worker: subprocess.Popen, mark: Path, timeout_s: float = 120) -> None:
    """SIGKILL ``worker`` (no clean-up runs: a crash) as soon as ``mark`` exists; the test
    fails with the worker's output if it exits first or ``mark`` never appears."""
    deadline = time.monotonic() + timeout_s
    while not mark.exists():
        assert time.monotonic() < deadline and worker.poll() is None, worker.communicate()[0]
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()

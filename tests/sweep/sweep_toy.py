"""A toy plugin for the sweep tests: a task whose "evaluation" is a closed-form function of
the toy reward's alpha and beta, so a trial is a real advx run that takes milliseconds.

Loaded into a trial through the sweep file's ``plugins: [sweep_toy]`` (this folder is put on
``sys.path`` by conftest.py, and on ``PYTHONPATH`` for worker subprocesses).

    score(round) = (1 - (alpha - 0.3)^2 - 0.1 (log10 beta + 1)^2) * (round + 1) / (rounds + 1)

so the optimum is alpha = 0.3, beta = 0.1, and the score rises every round (as a learning
curve does, which gives the pruner something to compare).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import advx
from advx.errors import ConfigError


@dataclass
class ToyTaskConfig:
    """mode: ok | raise (evaluate raises at round ``fail_round``) | nan (metric is NaN)."""

    rounds: int = 3
    mode: str = "ok"
    fail_round: int = 1
    metric: str = "toy/score"
    sleep_s: float = 0.0
    barrier: str = ""
    barrier_parties: int = 2

    def __post_init__(self) -> None:
        # A range the config class enforces itself: the recipe validator runs it.
        if self.sleep_s < 0:
            raise ValueError(f"sleep_s must be >= 0, got {self.sleep_s}")


_ARRIVED = False


def _wait_at_barrier(folder: str, parties: int, timeout_s: float = 120.0) -> None:
    """The first evaluation in each process waits until ``parties`` processes have arrived,
    so that every worker of a multi-worker test is known to run at least one trial."""
    global _ARRIVED
    if _ARRIVED or not folder:
        return
    _ARRIVED = True
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / str(os.getpid())).touch()
    deadline = time.monotonic() + timeout_s
    while len(list(Path(folder).iterdir())) < parties and time.monotonic() < deadline:
        time.sleep(0.05)


@dataclass
class ToyRewardConfig:
    alpha: float = 0.5
    beta: float = 0.1
    scale: int = 1


class ToyReward:
    def __init__(self, config: ToyRewardConfig) -> None:
        # A range only the factory enforces (as cls_loss does for alpha): the sweep's
        # pre-check builds the reward alone with each bound to find it.
        if not 0.0 <= config.alpha <= 1.0:
            raise ConfigError(f"reward.alpha must lie in [0, 1], got {config.alpha}.")
        self.config = config

    def __call__(self, rollout, ctx):  # pragma: no cover - the toy loop runs no RL step
        raise NotImplementedError


def score(alpha: float, beta: float, round: int, rounds: int) -> float:
    quality = 1.0 - (alpha - 0.3) ** 2 - 0.1 * (math.log10(beta) + 1.0) ** 2
    return quality * (round + 1) / (rounds + 1)


class ToyTask:
    def __init__(self, config: ToyTaskConfig) -> None:
        self.config = config

    def evaluate(self, components, stage: str) -> dict[str, float]:
        round = 0 if stage == "pretrain" else int(stage.split("-")[1])
        _wait_at_barrier(self.config.barrier, self.config.barrier_parties)
        time.sleep(self.config.sleep_s)
        if self.config.mode == "raise" and round >= self.config.fail_round:
            raise RuntimeError(f"toy task exploded at {stage}")
        reward = components.reward.config
        value = score(reward.alpha, reward.beta, round, self.config.rounds) * reward.scale
        if self.config.mode == "nan" and round >= self.config.fail_round:
            value = float("nan")
        return {self.config.metric: value, "toy/alpha": reward.alpha}


@advx.hookimpl
def advx_register_tasks(register) -> None:
    register("sweep_toy", lambda config, ctx: ToyTask(config), ToyTaskConfig)


def _needs_generator(config: ToyRewardConfig, ctx) -> ToyReward:
    """A factory that needs a component built before it (as an optimizer needs the
    generator): built alone, it fails whatever the bounds."""
    if getattr(ctx, "generator", None) is None:
        raise ConfigError("reward sweep_toy_needy needs a generator")
    return ToyReward(config)


@advx.hookimpl
def advx_register_rewards(register) -> None:
    register("sweep_toy", lambda config, ctx: ToyReward(config), ToyRewardConfig)
    register("sweep_toy_needy", _needs_generator, ToyRewardConfig)

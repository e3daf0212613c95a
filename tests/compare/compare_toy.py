"""A toy plugin for the compare tests: a task whose "evaluation" is a closed-form learning
curve plus seed noise, so a cell is a real advx run that takes milliseconds.

    score(round) = gain * (round + 1) / (rounds + 1) + noise(seed, round)

``gain`` comes from the toy reward's config (so a condition is an override of it), the noise
from the run's seed. Loaded into worker processes through the compare file's
``plugins: [compare_toy]`` (this folder is on PYTHONPATH in the tests).

Test hooks: ``fail_seed`` makes the run of that seed raise (while the file ``fail_file``
exists, when one is named); ``nan_seed`` makes that seed's run finish with a NaN score (while
``fail_file`` exists, when one is named); ``sleep_s`` slows each evaluation (of ``slow_seed``
only, unless it is -1); ``marker`` names a folder where each evaluation writes a file holding
torch's thread count (so a test knows a cell is running); ``barrier`` makes the first
evaluation of each process wait until ``barrier_parties`` processes arrived (so both workers
of a test are known to take part).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import advx
import numpy as np
import torch


@dataclass
class CompareToyTaskConfig:
    rounds: int = 3
    fail_seed: int = -1
    fail_file: str = ""
    nan_seed: int = -1
    sleep_s: float = 0.0
    slow_seed: int = -1
    marker: str = ""
    barrier: str = ""
    barrier_parties: int = 2
    noise: float = 0.1
    eval_offset: float = 0.0  # added to the score: an evaluation key that `advx eval` may set


@dataclass
class CompareToyRewardConfig:
    gain: float = 1.0


class CompareToyReward:
    def __init__(self, config: CompareToyRewardConfig) -> None:
        self.config = config

    def __call__(self, rollout, ctx):  # pragma: no cover - the toy loop runs no RL step
        raise NotImplementedError


_ARRIVED = False


def _barrier(folder: str, parties: int, timeout_s: float = 200.0) -> None:
    # Long: on a loaded 2-core machine the other worker may need a minute just to import.
    global _ARRIVED
    if _ARRIVED or not folder:
        return
    _ARRIVED = True
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / str(os.getpid())).touch()
    deadline = time.monotonic() + timeout_s
    while len(list(Path(folder).iterdir())) < parties and time.monotonic() < deadline:
        time.sleep(0.05)


def score(gain: float, seed: int, round: int, rounds: int, noise: float = 0.1) -> float:
    jitter = np.random.default_rng([seed, round]).normal(0.0, noise)
    return gain * (round + 1) / (rounds + 1) + float(jitter)


class CompareToyTask:
    def __init__(self, config: CompareToyTaskConfig, seed: int) -> None:
        self.config, self.seed = config, seed

    def evaluate(self, components, stage: str) -> dict[str, float]:
        round = 0 if stage == "pretrain" else int(stage.split("-")[1])
        cfg = self.config
        _barrier(cfg.barrier, cfg.barrier_parties)
        if cfg.marker:
            Path(cfg.marker).mkdir(parents=True, exist_ok=True)
            # the file holds torch's thread count (a test of --start-threads reads it)
            (Path(cfg.marker) / f"seed{self.seed}-gain{components.reward.config.gain}"
             f"-round{round}").write_text(str(torch.get_num_threads()))
        if cfg.slow_seed in (-1, self.seed):
            time.sleep(cfg.sleep_s)
        if self.seed == cfg.fail_seed and (not cfg.fail_file or Path(cfg.fail_file).exists()):
            raise RuntimeError(f"toy task exploded for seed {self.seed}")
        gain = components.reward.config.gain
        if self.seed == cfg.nan_seed and (not cfg.fail_file or Path(cfg.fail_file).exists()):
            return {"toy/score": float("nan"), "toy/gain": gain}
        return {"toy/score": score(gain, self.seed, round, cfg.rounds, cfg.noise)
                + cfg.eval_offset,
                "toy/gain": gain,
                # a no-training baseline of toy/score (named without the namespace, as the
                # product-relevance task names its baselines of cold/pr_auc)
                "baseline/floor/score": 0.25 + 0.01 * self.seed}


@advx.hookimpl
def advx_register_tasks(register) -> None:
    register("compare_toy", lambda config, ctx: CompareToyTask(config, ctx.seed),
             CompareToyTaskConfig)


@advx.hookimpl
def advx_register_rewards(register) -> None:
    register("compare_toy", lambda config, ctx: CompareToyReward(config), CompareToyRewardConfig)

"""advx plugin: experiment trackers as loggers — ``tensorboard``, ``mlflow``, ``wandb``.

One line in a recipe enables each::

    loggers: [console, tensorboard, mlflow, wandb]

Every tracker receives the run's step records (every reward term, optimizer diagnostics) and
round records (evaluation metrics, phase timings), the resolved recipe as its
parameters/config, a table of the round's generated samples, and the run folder's path.
The tracker libraries are optional: ``pip install 'advx[trackers]'``. See docs/tracking.md.
"""

from __future__ import annotations

import advx

from advx_trackers.trackers import (
    MlflowLogger,
    MlflowLoggerConfig,
    TensorBoardLogger,
    TensorBoardLoggerConfig,
    WandbLogger,
    WandbLoggerConfig,
)

__all__ = [
    "MlflowLogger",
    "MlflowLoggerConfig",
    "TensorBoardLogger",
    "TensorBoardLoggerConfig",
    "WandbLogger",
    "WandbLoggerConfig",
]


@advx.hookimpl
def advx_register_loggers(register) -> None:
    register("tensorboard", TensorBoardLogger, TensorBoardLoggerConfig)
    register("mlflow", MlflowLogger, MlflowLoggerConfig)
    register("wandb", WandbLogger, WandbLoggerConfig)

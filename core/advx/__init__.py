"""advx: a plugin framework for RL-driven adversarial text generation.

The core defines the contract (:mod:`advx.hookspecs`, :mod:`advx.components`,
:mod:`advx.rollout`) and the experiment loop; every model, algorithm and dataset is a plugin
loaded through the ``advx`` entry-point group.
"""

from advx.components import (
    BuildContext,
    Classifier,
    Components,
    Generator,
    Logger,
    Optimizer,
    PolicyOutputs,
    Reward,
    StepContext,
    Task,
)
from advx.errors import AdvxError, ConfigError, DataError, PluginError
from advx.hookspecs import hookimpl
from advx.rollout import Prompt, Rewards, Rollout, Sample, masked_mean

__version__ = "0.1.0"

__all__ = [
    "AdvxError",
    "BuildContext",
    "Classifier",
    "Components",
    "ConfigError",
    "DataError",
    "Generator",
    "Logger",
    "Optimizer",
    "PluginError",
    "PolicyOutputs",
    "Prompt",
    "Reward",
    "Rewards",
    "Rollout",
    "Sample",
    "StepContext",
    "Task",
    "hookimpl",
    "masked_mean",
]

"""Test-suite wide settings: offline Hugging Face, one CPU thread (the machine is shared)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

torch.set_num_threads(1)

import advx.plugins  # noqa: E402  (after the environment above is set)
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_plugin_manager_afterwards():
    """The plugin manager is process-wide: a test that restricted ADVX_LOAD_PLUGINS or
    registered a toy plugin leaves none of that to the next test."""
    yield
    advx.plugins.reset_plugin_manager()

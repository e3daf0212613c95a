"""Shared tiny fixtures for the SeqGAN-family tests (vocab of 30 ids, length 6)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

from advx.components import StepContext  # noqa: E402
from advx_seqgan.lstm import LSTMConfig, LSTMGenerator  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "../shared/data"


@pytest.fixture
def tiny_lstm() -> LSTMGenerator:
    torch.manual_seed(0)
    return LSTMGenerator(LSTMConfig(vocab="ids", vocab_size=30, max_len=6, init_std=0.5), [])


def step_ctx(generator, classifier=None, task=None) -> StepContext:
    return StepContext(
        task=task, generator=generator, classifier=classifier, reference=None,
        round=1, step=1, rng=np.random.default_rng(0),
    )

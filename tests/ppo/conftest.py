"""Fixtures for the seq2seq / cls_loss / PPO tests: a toy task and an SFT'd tiny T5."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from advx_seq2seq import Seq2SeqGenerator
from ppo_toy import ToyTask, make_generator

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def toy_task() -> ToyTask:
    return ToyTask()


@pytest.fixture(scope="session")
def sft_generator(tmp_path_factory, toy_task) -> Seq2SeqGenerator:
    """A tiny T5 after a short SFT (shared: tests that change weights must deepcopy it)."""
    generator = make_generator(tmp_path_factory.mktemp("gen"), toy_task)
    generator.sft(toy_task.generator_train())
    return generator

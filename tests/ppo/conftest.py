"""Fixtures for the seq2seq / cls_loss / PPO tests: a toy task and an SFT'd tiny T5."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from advx.components import BuildContext
from advx_seq2seq import Seq2SeqConfig, Seq2SeqGenerator, build_seq2seq
from ppo_toy import ToyTask

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def toy_task() -> ToyTask:
    return ToyTask()


def make_generator(run_dir, task, **keys) -> Seq2SeqGenerator:
    config = Seq2SeqConfig(**{"max_new_tokens": 8, "epochs": 20, "lr": 3e-3, **keys})
    return build_seq2seq(config, BuildContext(run_dir=run_dir, seed=0, device="cpu", task=task))


@pytest.fixture(scope="session")
def sft_generator(tmp_path_factory, toy_task) -> Seq2SeqGenerator:
    """A tiny T5 after a short SFT (shared: tests that change weights must deepcopy it)."""
    generator = make_generator(tmp_path_factory.mktemp("gen"), toy_task)
    generator.sft(toy_task.generator_train())
    return generator

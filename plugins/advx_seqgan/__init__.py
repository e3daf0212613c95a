"""advx built-in plugin: the SeqGAN family.

* generator ``lstm``: SeqGAN's LSTM language model (MLE pre-training, sampling, batched
  Monte-Carlo continuations).
* classifier ``cnn_discriminator``: SeqGAN's CNN discriminator (window sizes 1..20, highway,
  dropout, L2).
* reward ``mc_rollout``: REGS, the Monte-Carlo rollout reward that wraps a sequence-level
  reward (by default the classifier's probability of "real") with a lagging rollout policy.
"""

from __future__ import annotations

import advx

from advx_seqgan.cnn import CNNConfig, build_cnn_discriminator
from advx_seqgan.lstm import LSTMConfig, build_lstm
from advx_seqgan.mc_rollout import MCRolloutConfig, build_mc_rollout


@advx.hookimpl
def advx_register_generators(register: advx.hookspecs.Register) -> None:
    register("lstm", build_lstm, LSTMConfig)


@advx.hookimpl
def advx_register_classifiers(register: advx.hookspecs.Register) -> None:
    register("cnn_discriminator", build_cnn_discriminator, CNNConfig)


@advx.hookimpl
def advx_register_rewards(register: advx.hookspecs.Register) -> None:
    register("mc_rollout", build_mc_rollout, MCRolloutConfig)

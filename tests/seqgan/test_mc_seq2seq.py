"""mc_rollout with the seq2seq (tiny T5) generator: the same reward, no LSTM-specific code."""

from __future__ import annotations

import torch
from advx.components import BuildContext
from advx.rollout import Prompt
from advx_reinforce.reinforce import reward_to_go
from advx_seq2seq import Seq2SeqConfig, build_seq2seq
from advx_seqgan.mc_rollout import MCRolloutConfig, MCRolloutReward

from .conftest import step_ctx

TEXTS = ["red shoes for men", "blue running shoes", "green cotton shirt", "black leather bag"]


class Texts:
    def texts(self):
        return TEXTS


def word_share(rollout, ctx) -> torch.Tensor:
    """Sequence reward: share of the words that contain an 's'."""
    return torch.tensor([sum("s" in w for w in t.split()) / max(len(t.split()), 1)
                         for t in rollout.texts])


def test_mc_rollout_works_with_seq2seq(tmp_path):
    config = Seq2SeqConfig(max_new_tokens=6, vocab_size=200, value_head=False)
    gen = build_seq2seq(config, BuildContext(run_dir=tmp_path, seed=0, device="cpu",
                                             task=Texts()))
    rollout = gen.sample([Prompt("shoes"), Prompt("shirt")], n=2)
    calls = []
    complete = type(gen).complete

    def counting(self, r, rows, prefix):
        calls.append(len(rows))
        return complete(self, r, rows, prefix)

    type(gen).complete = counting
    try:
        reward = MCRolloutReward(MCRolloutConfig(rollouts=3), word_share)
        rewards = reward(rollout, step_ctx(gen))
    finally:
        type(gen).complete = complete
    mask = rollout.response_mask
    expected_rows = 3 * int((rollout.lengths - 1).clamp(min=0).sum())
    assert calls == [expected_rows]  # one batched call over every (row, prefix, rollout)
    last = rollout.last_index
    full = word_share(rollout, None)
    assert torch.allclose(reward.last_q[torch.arange(4), last], full)
    assert torch.allclose(reward_to_go(rewards.per_token, mask.float()), reward.last_q, atol=1e-6)

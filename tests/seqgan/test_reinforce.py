from __future__ import annotations

import torch
from advx.rollout import Prompt, Rewards, Sample
from advx_reinforce.reinforce import Reinforce, ReinforceConfig, leave_one_out, reward_to_go

from .conftest import step_ctx

MASK = torch.ones(4, 3)
G = torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0], [0.0, 0.0, 6.0], [2.0, 2.0, 2.0]])
GROUPS = torch.tensor([0, 0, 1, 1])


def opt(**kw) -> Reinforce:
    return Reinforce(ReinforceConfig(**kw), [torch.nn.Parameter(torch.zeros(1))])


def test_reward_to_go():
    r = torch.tensor([[1.0, 0.0, 2.0, 5.0]])
    m = torch.tensor([[1, 1, 1, 0]])
    assert reward_to_go(r, m).tolist() == [[3.0, 2.0, 2.0, 0.0]]


def test_baseline_none_and_batch_mean():
    assert torch.equal(opt(baseline="none").baseline(G, MASK, GROUPS), torch.zeros_like(G))
    b = opt(baseline="batch_mean").baseline(G, MASK, GROUPS)
    assert torch.allclose(b, G.mean(0, keepdim=True).expand_as(G))


def test_baseline_leave_one_out():
    b = opt(baseline="leave_one_out").baseline(G, MASK, GROUPS)
    expected = torch.stack([G[1], G[0], G[3], G[2]])  # groups of two: the other member
    assert torch.allclose(b, expected)
    three = leave_one_out(G[:3], MASK[:3], torch.tensor([0, 0, 0]))
    assert torch.allclose(three[0], (G[1] + G[2]) / 2)
    single = leave_one_out(G[:1], MASK[:1], torch.tensor([0]))
    assert torch.equal(single, torch.zeros(1, 3))


def test_baseline_moving_average():
    o = opt(baseline="moving_average", baseline_momentum=0.9)
    first = o.baseline(G, MASK, GROUPS)
    assert torch.allclose(first, torch.full_like(G, float(G.mean())))
    second = o.baseline(G + 10, MASK, GROUPS)
    assert torch.allclose(second, torch.full_like(G, float(G.mean())))  # used before update
    assert abs(o.moving_baseline - (0.9 * float(G.mean()) + 0.1 * float(G.mean() + 10))) < 1e-5


def test_update_raises_likelihood_of_rewarded_sequences(tiny_lstm):
    rollout = tiny_lstm.sample([Prompt("")] * 8)
    good = torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0])
    rewards = Rewards.at_end(good, rollout)
    before = tiny_lstm.nll([Sample(rollout.texts[0])]).total.item()
    optimizer = Reinforce(ReinforceConfig(lr=0.01, baseline="batch_mean", entropy_coef=0.01),
                          tiny_lstm.parameters())
    for _ in range(5):
        metrics = optimizer.update(rollout, rewards, step_ctx(tiny_lstm))
    assert tiny_lstm.nll([Sample(rollout.texts[0])]).total.item() < before - 0.5
    assert {"rl/loss", "rl/entropy", "rl/baseline"} <= set(metrics)


def test_teacher_forcing_uses_real_sequences(tiny_lstm):
    class Task:
        def generator_train(self):
            return [Sample("1 2 3 4 5 6")] * 4

    rollout = tiny_lstm.sample([Prompt("")] * 4)
    rewards = Rewards.at_end(torch.zeros(4), rollout)
    before = tiny_lstm.nll([Sample("1 2 3 4 5 6")]).total.item()
    optimizer = Reinforce(ReinforceConfig(teacher_forcing=2), tiny_lstm.parameters())
    for _ in range(5):
        optimizer.update(rollout, rewards, step_ctx(tiny_lstm, task=Task()))
    assert tiny_lstm.nll([Sample("1 2 3 4 5 6")]).total.item() < before - 1.0


def test_teacher_forcing_counts_generator_tokens_not_words(tiny_lstm, monkeypatch):
    """The real sequences' token count comes from ``SequenceNLL.tokens`` (10 sub-word tokens
    each here), never from ``len(text.split())`` (3 words)."""
    from advx.rollout import SequenceNLL

    class Task:
        def generator_train(self):
            return [Sample("1 2 3")] * 2

    anchor = next(iter(tiny_lstm.parameters()))

    def nll(samples, temperature=1.0):
        total = anchor.sum() * 0 + torch.full((len(samples),), 5.0)
        return SequenceNLL(total=total, tokens=torch.full((len(samples),), 10))

    monkeypatch.setattr(tiny_lstm, "nll", nll)
    rollout = tiny_lstm.sample([Prompt("")] * 4)
    rewards = Rewards.at_end(torch.zeros(4), rollout)
    optimizer = Reinforce(ReinforceConfig(teacher_forcing=2, lr=0.0), tiny_lstm.parameters())
    metrics = optimizer.update(rollout, rewards, step_ctx(tiny_lstm, task=Task()))
    tokens = float(rollout.response_mask.sum()) + 2 * 10
    assert abs(metrics["rl/loss"] - 2 * 5.0 / tokens) < 1e-6


def test_nan_reward_is_never_applied(tiny_lstm):
    import pytest
    from advx.errors import NonFiniteError

    rollout = tiny_lstm.sample([Prompt("")] * 4)
    rewards = Rewards.at_end(torch.full((4,), float("nan")), rollout)
    before = [p.detach().clone() for p in tiny_lstm.parameters()]
    optimizer = Reinforce(ReinforceConfig(), tiny_lstm.parameters())
    with pytest.raises(NonFiniteError, match="reinforce loss is nan"):
        optimizer.update(rollout, rewards, step_ctx(tiny_lstm))
    for old, new in zip(before, tiny_lstm.parameters(), strict=True):
        assert torch.equal(old, new.detach())

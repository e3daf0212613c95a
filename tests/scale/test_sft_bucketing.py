"""Length-bucketed SFT minibatches (``generator.length_bucketed``, advx.generator_kit).

Off must be today's uniform order exactly (the same batches, the same RNG stream); on, every
example is in one batch per epoch, batches hold near-equal lengths, and under data
parallelism the main process's batches are what every rank cuts into shares.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import advx.generator_kit as kit
import pytest
import torch
from advx.errors import ConfigError
from advx.generator_kit import SFTLoop, epoch_batches, sample_length
from advx.rollout import Prompt, Sample
from advx_causal.generator import CausalConfig
from torch import Tensor, nn


def _samples(n: int = 300) -> list[Sample]:
    """Prompts of 1..40 words in a random order (as histories of different lengths)."""
    gen = torch.Generator().manual_seed(1)
    words = torch.randint(1, 41, (n,), generator=gen).tolist()
    return [Sample(text=f"t{i}", prompt=Prompt(" ".join(["w"] * k))) for i, k in enumerate(words)]


def _loop(**keys: object) -> tuple[SFTLoop, list[list[str]]]:
    """A loop over one weight whose batch loss records each batch's targets."""
    model = nn.Linear(1, 1)
    seen: list[list[str]] = []
    loop = SFTLoop("toy", model, lambda p: torch.optim.SGD(p, lr=0.01),
                   epochs=2, batch_size=8, max_grad_norm=0.0, **keys)  # type: ignore[arg-type]

    def batch_loss(batch: Sequence[Sample]) -> tuple[Tensor, int]:
        seen.append([s.text for s in batch])
        return model.weight.sum() ** 2 * len(batch), len(batch)

    loop.batch_loss = batch_loss  # type: ignore[attr-defined]
    return loop, seen


def _spread(samples: list[Sample], batches: list[list[str]]) -> float:
    """Mean over batches of (longest - shortest) prompt, in words: the padding per row."""
    length = {s.text: sample_length(s)[0] for s in samples}
    return sum(max(length[t] for t in b) - min(length[t] for t in b) for b in batches) / len(
        batches)


def test_off_is_the_uniform_order_bit_for_bit() -> None:
    samples = _samples(29)  # an uneven last batch of 5
    torch.manual_seed(0)
    expected = []
    for _ in range(2):  # the loop before length_bucketed existed
        order = torch.randperm(len(samples)).tolist()
        expected += [[samples[i].text for i in order[s : s + 8]] for s in range(0, 29, 8)]
    after = torch.get_rng_state()
    loop, seen = _loop()  # (its weight's init draws from the RNG: build, then seed)
    torch.manual_seed(0)
    loop.run(samples, loop.batch_loss)  # type: ignore[attr-defined]
    assert seen == expected
    assert torch.equal(torch.get_rng_state(), after)


def test_on_every_example_once_per_epoch_in_near_equal_batches() -> None:
    samples = _samples()
    loop, seen = _loop(length_bucketed=True)
    torch.manual_seed(0)
    loop.run(samples, loop.batch_loss)  # type: ignore[attr-defined]
    per_epoch = len(seen) // 2
    assert per_epoch == 38  # ceil(300 / 8): the step count the schedules assume
    for epoch in (seen[:per_epoch], seen[per_epoch:]):
        flat = [t for b in epoch for t in b]
        assert sorted(flat) == sorted(s.text for s in samples)  # each exactly once
        assert sorted(len(b) for b in epoch)[1:] == [8] * (per_epoch - 1)  # one short batch
    assert seen[:per_epoch] != seen[per_epoch:]  # reshuffled every epoch
    off, uniform = _loop()
    torch.manual_seed(0)
    off.run(samples, off.batch_loss)  # type: ignore[attr-defined]
    # 300 examples over 40 lengths, one chunk: each batch spans ~1 length; uniform ~30
    assert _spread(samples, seen) <= 2 < 20 <= _spread(samples, uniform)


def test_chunks_bound_the_sort_and_batch_order_is_shuffled() -> None:
    lengths = list(range(64))  # index = length
    torch.manual_seed(0)
    batches = epoch_batches(64, 4, lengths=lengths, chunk_batches=2)
    assert sorted(i for b in batches for i in b) == lengths
    assert all(b == sorted(b) for b in batches)  # sorted inside a chunk
    firsts = [b[0] for b in batches]
    assert firsts != sorted(firsts)  # ... but batches are not in length order


def test_sharded_ranks_cut_the_main_process_bucketed_batches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank 0 of 2, simulated: the bucketed batches go through ``broadcast_object`` (the main
    process's, the same on every rank) and each global batch is cut into this rank's share."""
    broadcast: list[object] = []

    def fake_broadcast(value: object) -> object:
        broadcast.append(value)
        return value

    @contextlib.contextmanager
    def no_seed(step: int | None = None) -> Iterator[None]:
        yield

    monkeypatch.setattr(kit, "is_distributed", lambda: True)
    monkeypatch.setattr(kit, "same_on_every_rank", lambda text: True)
    monkeypatch.setattr(kit, "broadcast_object", fake_broadcast)
    monkeypatch.setattr(kit, "shard_bounds", lambda n: (0, n // 2))
    monkeypatch.setattr(kit, "sum_across", lambda values: [2 * v for v in values])
    monkeypatch.setattr(kit, "share_scale", lambda count: 2 / max(count, 1))
    monkeypatch.setattr(kit, "rank_seed", no_seed)
    samples = _samples(40)
    loop, seen = _loop(length_bucketed=True)
    torch.manual_seed(0)
    loop.run(samples, loop.batch_loss)  # type: ignore[attr-defined]
    torch.manual_seed(0)
    expected = [epoch_batches(40, 8, lengths=[sample_length(s) for s in samples])
                for _ in range(2)]
    assert broadcast == expected  # the batches, bucketed, broadcast once an epoch
    assert seen == [[samples[i].text for i in b[:4]] for e in expected for b in e]


def test_the_key_reaches_the_loop_and_rejects_a_non_bool() -> None:
    loop = SFTLoop.from_config("causal", nn.Linear(1, 1), CausalConfig(length_bucketed=True))
    assert loop.length_bucketed is True
    assert SFTLoop.from_config("causal", nn.Linear(1, 1), CausalConfig()).length_bucketed is False
    with pytest.raises(ConfigError, match=r"generator\.length_bucketed"):
        SFTLoop.from_config("causal", nn.Linear(1, 1), CausalConfig(length_bucketed="yes"))

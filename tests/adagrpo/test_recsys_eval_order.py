"""The next_item evaluation batches users by history length (less beam-search padding)."""

from __future__ import annotations

import math

import pytest
from adagrpo_kit import write_beauty_fixture
from advx import BuildContext, Components
from advx_recsys import NextItemConfig, build_next_item


def test_evaluation_batches_prompts_by_length_and_scores_every_user_once(tmp_path):
    folder = write_beauty_fixture(tmp_path / "data", users=30)
    cfg = NextItemConfig(path=str(folder / "seq.txt"), attributes=str(folder / "attrs.json"),
                         codebook=[3, 3], svd_dim=4, history=6, topk=5, constrained=True,
                         eval_batch_size=4)
    ctx = BuildContext(run_dir=tmp_path, seed=0, device="cpu")
    task = build_next_item(cfg, ctx)
    from advx_causal import CausalConfig, build_causal

    generator = build_causal(CausalConfig(d_model=16, num_layers=1, num_heads=2,
                                          max_new_tokens=4),
                             BuildContext(run_dir=tmp_path, seed=0, device="cpu", task=task))
    calls: list[list[tuple[str, int]]] = []
    search = generator.beam_search

    def recording(prompts, k, allowed=None):
        calls.append([(p.meta["user"], len(p.text.split())) for p in prompts])
        return search(prompts, k, allowed=allowed)

    generator.beam_search = recording  # type: ignore[method-assign]
    first = task.evaluate(Components(task=task, generator=generator), "test")
    per_split = len(calls) // 2
    for split, split_calls in (("valid", calls[:per_split]), ("test", calls[per_split:])):
        shown = [n for call in split_calls for _, n in call]
        assert shown == sorted(shown) and len(set(shown)) > 1  # one pass, shortest first
        users = [u for call in split_calls for u, _ in call]
        assert sorted(users) == sorted(e.user for e in task.eval_sets[split])
    # the same metrics as scoring the users in their original order (the order before)
    from advx_recsys.task import ranking_metrics, top_k_texts

    for split, examples in task.eval_sets.items():
        ranked = []
        for start in range(0, len(examples), 4):
            rows = top_k_texts(generator, [task.prompt(e) for e in examples[start:start + 4]],
                               5, task.codec.texts())
            ranked += [[task.item_of(t) for t in row] for row in rows]
        expected = ranking_metrics(ranked, [e.target for e in examples], (5,))
        assert {k: first[f"{split}/{k}"] for k in expected} == pytest.approx(expected)


class _HalfRightSearch:
    """A beam search without a model: the target first for every other user (by the id's
    last digit), five other catalogue entries otherwise, so per-user hits vary and the
    bootstrap SE is not 0."""

    def __init__(self, task) -> None:
        self.task = task

    def beam_search(self, prompts, k, allowed=None):
        others = self.task.codec.texts()
        rows = []
        for p in prompts:
            hit = int(p.meta["user"][-1]) % 2 == 0 if p.meta["user"][-1].isdigit() else False
            wrong = [t for t in others if t != p.meta["target_text"]]
            texts = ([p.meta["target_text"]] if hit else []) + wrong
            rows.append([(t, 0.0) for t in texts[:k]])
        return rows


@pytest.mark.parametrize("users", [31, 1])  # uneven shares; fewer users than ranks
def test_two_shares_give_one_process_metrics_and_standard_errors(tmp_path, monkeypatch, users):
    """The sharded evaluation (emulated in one process: two ranks' shard_map shares, searched
    one after the other) reports exactly one process's metrics, the bootstrap SEs included
    (they resample users by position, so the rankings must come back in one order), and each
    share is every other user by prompt length, with shard_map's share sizes."""
    import advx.distributed
    from advx_recsys import task as task_module

    folder = write_beauty_fixture(tmp_path / "data", users=max(users, 30))
    cfg = NextItemConfig(path=str(folder / "seq.txt"), attributes=str(folder / "attrs.json"),
                         codebook=[3, 3], svd_dim=4, history=6, topk=5, constrained=True,
                         eval_batch_size=4, eval_users=users)
    task = build_next_item(cfg, BuildContext(run_dir=tmp_path, seed=0, device="cpu"))
    generator = _HalfRightSearch(task)

    def metrics():
        found = task.evaluate(Components(task=task, generator=generator), "test")
        return {k: v for k, v in found.items() if not k.startswith("eval/")}

    one = metrics()
    assert one["valid/hr@5_se"] > 0 or users == 1
    shares: list[list[int]] = []

    def two_ranks(fn, items):
        out = []
        for r in range(2):
            lo, hi = advx.distributed.shard_bounds(len(items), r)
            shares.append([len(task.prompt(e).text.split()) for e in items[lo:hi]])
            out += fn(list(items[lo:hi]))
        return out

    monkeypatch.setattr(advx.distributed, "world_size", lambda: 2)
    monkeypatch.setattr(task_module, "world_size", lambda: 2)
    monkeypatch.setattr(task_module, "shard_map", two_ranks)
    two = metrics()
    assert two.keys() == one.keys()
    assert all(two[k] == one[k] or (math.isnan(two[k]) and math.isnan(one[k])) for k in one)
    for first, second in zip(shares[0::2], shares[1::2], strict=True):  # per split
        assert len(first) == (len(first) + len(second)) // 2  # shard_bounds' sizes
        merged = [n for pair in zip(first, second, strict=False) for n in pair]
        merged += second[len(first):]
        assert merged == sorted(merged)  # dealt alternately by prompt length

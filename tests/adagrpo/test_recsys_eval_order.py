"""The next_item evaluation batches users by history length (less beam-search padding)."""

from __future__ import annotations

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

"""next_item: most-popular baselines on 3 hand-made users, per-user SEs, the attributes
fallback and refusal, and the caps for long histories."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from advx.components import BuildContext, Components
from advx.errors import ConfigError, DataError
from advx_recsys import NextItemConfig, build_next_item
from advx_recsys.baselines import per_user, popularity, popularity_baselines
from advx_recsys.data import Example
from advx_recsys.inputs import resolve_attributes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adagrpo"))
from adagrpo_kit import write_beauty_fixture


def ctx() -> BuildContext:
    return BuildContext(run_dir=Path("."), seed=0, device="cpu")


def test_popularity_counts_only_training_parts():
    counts = popularity([["1", "2", "3", "4", "5"], ["1", "2", "6", "7"], ["2", "8", "1", "9"]])
    assert counts == {"2": 3, "1": 2, "3": 1, "8": 1}  # the last two items never count


def test_most_popular_hr_and_ndcg_on_three_users():
    counts = {"2": 3, "1": 2, "3": 1, "8": 1}
    catalogue = [str(i) for i in range(1, 10)]
    users = [Example("u1", ("1",), "2", "test"),   # popular [2, 1]: hit at rank 0
             Example("u2", ("2",), "1", "test"),   # hit at rank 1; unseen [1, 3]: rank 0
             Example("u3", ("3",), "8", "test")]   # miss; unseen [2, 1]: miss
    out = popularity_baselines({"test": users}, counts, catalogue, topk=2, ks=[1, 2])
    assert out["baseline/most_popular/test/hr@1"] == pytest.approx(1 / 3)
    assert out["baseline/most_popular/test/hr@2"] == pytest.approx(2 / 3)
    assert out["baseline/most_popular/test/ndcg@2"] == pytest.approx((1 + 1 / math.log2(3)) / 3)
    assert out["baseline/most_popular_unseen/test/hr@1"] == pytest.approx(2 / 3)
    assert out["baseline/most_popular_unseen/test/ndcg@2"] == pytest.approx(2 / 3)
    assert out["baseline/most_popular/test/hr@2_se"] > 0


def test_per_user_means_are_the_ranking_metrics():
    hits, gains = per_user([["a", "b"], [None, "c"], ["d"]], ["b", "c", "x"], k=2)
    assert hits.tolist() == [1, 1, 0]
    assert gains.tolist() == pytest.approx([1 / math.log2(3), 1 / math.log2(3), 0])


class PopularStub:
    """A generator whose beam search returns the same items for everyone."""

    def __init__(self, texts):
        self.texts = texts

    def beam_search(self, prompts, k):
        return [[(t, 0.0) for t in self.texts[:k]] for _ in prompts]


def test_evaluation_reports_baselines_and_ses_on_the_same_users(tmp_path):
    folder = write_beauty_fixture(tmp_path / "data")
    task = build_next_item(NextItemConfig(path=str(folder / "seq.txt"), item_tokens="id",
                                          eval_users=15), ctx())
    ranked = sorted(task.popularity, key=lambda i: (-task.popularity[i], task.items.index(i)))
    stub = PopularStub([task.codec.text_of(i) for i in ranked])
    metrics = task.evaluate(Components(task=task, generator=stub), "pretrain")
    for split in ("valid", "test"):
        for key in ("hr@5", "hr@10", "ndcg@10"):
            # the stub IS the most-popular list: same users, same numbers
            assert metrics[f"{split}/{key}"] == pytest.approx(
                metrics[f"baseline/most_popular/{split}/{key}"])
            assert f"{split}/{key}_se" in metrics
        assert f"{split}/hr@10_resolvable" in metrics


def test_no_attributes_file_falls_back_to_cooccurrence(tmp_path):
    folder = write_beauty_fixture(tmp_path / "data")
    # a dataset whose ids (1..30) merely overlap Beauty's gets no Beauty attributes
    assert resolve_attributes(str(folder / "seq.txt"), "", "both") == (None, "cooccurrence")
    task = build_next_item(NextItemConfig(path=str(folder / "seq.txt"), codebook=[3, 3],
                                          svd_dim=4), ctx())
    assert all(task.item_of(task.codec.text_of(i)) == i for i in task.items)


def test_beauty_attributes_only_for_the_beauty_file(tmp_path):
    folder = write_beauty_fixture(tmp_path / "data")
    beauty_attrs = folder / "Beauty_item2attributes.json"
    (folder / "attrs.json").rename(beauty_attrs)
    with pytest.raises(ConfigError, match="Beauty's attributes file"):
        build_next_item(NextItemConfig(path=str(folder / "seq.txt"),
                                       attributes=str(beauty_attrs)), ctx())
    # the Beauty interactions file picks up the attributes beside it by default ...
    (folder / "seq.txt").rename(folder / "Beauty.txt")
    build_next_item(NextItemConfig(path=str(folder / "Beauty.txt"), codebook=[3, 3],
                                   svd_dim=4), ctx())
    # ... and refuses them when they do not cover its items
    attrs = json.loads(beauty_attrs.read_text())
    del attrs["1"]
    beauty_attrs.write_text(json.dumps(attrs))
    with pytest.raises(DataError, match="unknown to the attributes file"):
        build_next_item(NextItemConfig(path=str(folder / "Beauty.txt"), codebook=[3, 3],
                                       svd_dim=4), ctx())


def test_caps_on_history_and_training_pairs(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("".join(f"{u} " + " ".join(str(1 + (u + k) % 50) for k in range(40)) + "\n"
                            for u in range(1, 6)))
    full = build_next_item(NextItemConfig(path=str(path), item_tokens="id"), ctx())
    assert len(full.split.train) == 5 * 37
    capped = build_next_item(NextItemConfig(path=str(path), item_tokens="id", max_history=10,
                                            max_train_pairs=20), ctx())
    assert len(capped.split.train) == 20
    assert max(len(e.history) for e in capped.split.train) <= 7
    assert [e.target for e in capped.split.test] == [e.target for e in full.split.test]
    assert all(len(e.history) == 9 for e in capped.split.test)
    with pytest.raises(ConfigError, match="max_history"):
        build_next_item(NextItemConfig(path=str(path), item_tokens="id", max_history=2), ctx())

"""Task ``next_item``: leave-one-out split, item codecs, metrics and hallucination on crafted
outputs, bad inputs; the ``ranker`` and the ``ranker_score`` reward on a small fixture."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch
from adagrpo_kit import write_beauty_fixture
from advx import BuildContext, DataError, Rollout
from advx_recsys import (
    NextItemConfig,
    RankerConfig,
    RankerScoreConfig,
    build_next_item,
    build_ranker,
    build_ranker_score,
    ranking_metrics,
)
from advx_recsys.data import leave_one_out, read_sequences, read_table
from advx_recsys.items import ItemCodec

DATA = Path(__file__).resolve().parents[2] / "../shared/data/amazon_beauty"


def ctx(**kw) -> BuildContext:
    return BuildContext(run_dir=Path("."), seed=0, device="cpu", **kw)


def fixture_task(tmp_path: Path, **overrides):
    folder = write_beauty_fixture(tmp_path / "data")
    cfg = NextItemConfig(path=str(folder / "seq.txt"), attributes=str(folder / "attrs.json"),
                         codebook=[3, 3], svd_dim=4, history=3, **overrides)
    return build_next_item(cfg, ctx())


def test_leave_one_out_split():
    split = leave_one_out({"u": ["1", "2", "3", "4", "5"], "v": ["7", "8", "9"]})
    assert [(e.history, e.target) for e in split.test] == [
        (("1", "2", "3", "4"), "5"), (("7", "8"), "9")]
    assert [(e.history, e.target) for e in split.valid] == [
        (("1", "2", "3"), "4"), (("7",), "8")]
    assert [(e.history, e.target) for e in split.train] == [
        (("1",), "2"), (("1", "2"), "3")]
    assert all(e.target not in {"4", "5", "8", "9"} for e in split.train)


def test_hallucination_and_ranking_metrics_on_crafted_outputs():
    codec = ItemCodec.from_codes({"1": (0, 1, 0), "2": (0, 2, 0), "3": (1, 0, 0)})
    assert codec.item_of("a0 b1 c0") == "1"
    assert codec.item_of(" a0  b1 c0 ") == "1"  # whitespace-insensitive
    for bad in ("a0 b1", "a0 b1 c0 c0", "a9 b9 c9", "", "a0 b1 c1"):
        assert codec.item_of(bad) is None
    outputs = [["a0 b1 c0", "a0 b1", "a1 b0 c0"], ["a0 b2 c0", "zz", "a9"]]
    ranked = [[codec.item_of(t) for t in row] for row in outputs]
    m = ranking_metrics(ranked, ["3", "1"], ks=(1, 3))
    assert m["hallucination"] == pytest.approx(3 / 6)
    assert m["hallucination@1"] == 0.0
    assert m["hr@1"] == 0.0 and m["hr@3"] == 0.5
    assert m["ndcg@3"] == pytest.approx(0.5 * 1 / torch.log2(torch.tensor(4.0)).item())
    plain = ItemCodec.plain(["5", "6"])
    assert plain.item_of("i5") == "5" and plain.item_of("i5 i6") is None


def test_task_prompts_meta_and_texts(tmp_path):
    task = fixture_task(tmp_path)
    assert all(len(task.codec.text_of(i).split()) == 3 for i in task.items)  # 2 levels + disamb.
    example = task.split.train[3]
    prompt = task.prompt(example)
    assert prompt.meta["target"] == example.target
    assert prompt.meta["target_text"] == task.codec.text_of(example.target)
    assert len(prompt.text.split()) == 3 * min(3, len(example.history))
    held_out = {(e.user, e.target) for e in task.split.test}
    assert all((s.prompt.meta["user"], s.prompt.meta["target"]) not in held_out
               for s in task.generator_train())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("1 3 4\n2 5\n", "fewer than 3 items"),
        ("1 3 x7 4\n", "not a positive integer"),
    ],
)
def test_bad_sequence_files(tmp_path, content, message):
    path = tmp_path / "seq.txt"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        build_next_item(NextItemConfig(path=str(path), item_tokens="id"), ctx())


def test_unknown_item_in_attributes_and_missing_files(tmp_path):
    folder = write_beauty_fixture(tmp_path / "data", items=30)
    (folder / "seq.txt").write_text("1 1 2 3 99\n")
    with pytest.raises(DataError, match="unknown to the attributes file"):
        build_next_item(NextItemConfig(path=str(folder / "seq.txt"),
                                       attributes=str(folder / "attrs.json")), ctx())
    with pytest.raises(DataError, match="no such file"):
        read_sequences(tmp_path / "nope.txt")


def test_short_users_can_be_dropped():
    split = leave_one_out({"u": ["1", "2", "3", "4"], "v": ["1", "2"]}, drop_short=True)
    assert [e.user for e in split.test] == ["u"]


def test_interaction_table_by_column_mapping(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::10::5::300\n1::11::3::100\n1::12::4::200\n2::10::1::5\n2::13::1::6\n"
                    "2::14::1::7\n")
    seqs = read_table(path, "userId", "movieId", "timestamp", sep="::",
                      names="userId,movieId,rating,timestamp")
    assert seqs == {"1": ["11", "12", "10"], "2": ["10", "13", "14"]}
    with pytest.raises(DataError, match="not found"):
        read_table(path, "user", "movieId", "timestamp", sep="::",
                   names="userId,movieId,rating,timestamp")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        read_table(empty, "u", "i", "t")


def test_ranker_learns_the_fixture_and_reward_penalises_invalid(tmp_path):
    task = fixture_task(tmp_path)
    ranker = build_ranker(RankerConfig(d_model=16, num_heads=2, num_layers=1, epochs=30,
                                       batch_size=32, lr=1e-2, dropout=0.0), ctx(task=task))
    metrics = ranker.fit(task.classifier_train())
    samples = task.classifier_train()
    assert metrics["ranker/train_loss"] < 3.0  # well below log(30) ≈ 3.4 at the start
    probs = ranker.predict_proba(samples[:4])
    assert probs.shape == (4, 2) and torch.allclose(probs.sum(-1), torch.ones(4))
    assert ranker.loss(samples[:4]).shape == (4,)
    reward = build_ranker_score(RankerScoreConfig(invalid_penalty=-1.0),
                                ctx(task=task, classifier=ranker))
    prompt = task.prompt(task.split.train[0])
    texts = [prompt.meta["target_text"], "a0", task.codec.text_of(task.items[5])]
    rollout = Rollout(
        prompts=[prompt] * 3, prompt_ids=torch.zeros(3, 1, dtype=torch.long),
        prompt_mask=torch.ones(3, 1, dtype=torch.long),
        response_ids=torch.ones(3, 4, dtype=torch.long),
        response_mask=torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1]]),
        logprobs=torch.zeros(3, 4), texts=texts, group_ids=torch.zeros(3, dtype=torch.long),
    )
    rewards = reward(rollout, None)
    total = rewards.total
    assert float(total[1]) == -1.0 and 0.0 <= float(total[0]) <= 1.0
    assert rewards.per_token[1, 1] == -1.0 and rewards.per_token[1, 2] == 0.0  # paid at the end
    assert rewards.terms["valid"].tolist() == [1.0, 0.0, 1.0]
    third = float(task.items[5] == prompt.meta["target"])
    assert rewards.terms["hit"].tolist() == [1.0, 0.0, third]
    trl_style = reward([prompt.text] * 2, texts[:2], histories=[prompt.meta["history"]] * 2)
    assert trl_style[1] == -1.0 and trl_style[0] == pytest.approx(float(total[0]))


@pytest.mark.skipif(not (DATA / "Beauty.txt").exists(), reason="shared Amazon Beauty data absent")
def test_real_beauty_file_reads_and_splits():
    seqs = read_sequences(DATA / "Beauty.txt")
    assert len(seqs) == 22363
    split = leave_one_out(seqs)
    assert len(split.test) == len(split.valid) == 22363
    assert len(split.train) == sum(len(s) - 3 for s in seqs.values())


def test_percentile_never_counts_the_item_against_itself():
    """The percentile is the share of catalogue items scored strictly below the generated one,
    read from one score matrix: a separately computed score one ulp above its own matrix entry
    must not lift the best item from (n-1)/n to 1."""
    from advx_recsys.reward import RankerScoreReward

    class Task:
        index: ClassVar[dict[str, int]] = {"a": 0, "b": 1, "c": 2, "d": 3}

        def item_of(self, text):
            return text if text in self.index else None

    class Ranker:
        matrix = torch.tensor([[0.1, 0.2, 0.3, 0.4]])

        def score(self, histories, items):  # one ulp above the matrix entry
            own = torch.tensor([float(self.matrix[0, Task.index[i]]) for i in items])
            return torch.nextafter(own, torch.tensor(1.0))

        def score_all(self, histories):
            return self.matrix.expand(len(histories), -1)

    reward = RankerScoreReward(RankerScoreConfig(), Task(), Ranker())
    out = reward.sequence_rewards([["x"]] * 3, ["d", "a", "zz"])
    assert out["reward"].tolist() == pytest.approx([0.75, 0.0, -1.0])
    assert out["valid"].tolist() == [1.0, 1.0, 0.0]

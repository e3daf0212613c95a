"""What GRPO/AdaGRPO and the recsys components declare and check at build time
(``ItemScorer``, ``ItemCatalogue``, ``SupportsBeamSearch``), and GRPO's minibatching:
a (seed, round, step)-seeded order per epoch, ``dapo`` normalised per minibatch, metrics
averaged over every minibatch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from adagrpo_kit import grpo_batch
from advx import BuildContext, PluginError, Prompt, Rewards, StepContext
from advx.errors import NonFiniteError
from advx_grpo import AdaGRPOConfig, GRPOConfig, GRPOOptimizer, build_adagrpo
from advx_grpo.grpo import aggregate, group_advantages, per_token_grpo_loss
from advx_recsys import RankerConfig, RankerScoreConfig, build_ranker, build_ranker_score
from advx_recsys.task import top_k_texts


class Catalogue:
    """The ItemCatalogue capability and nothing else."""

    items = ("i1", "i2")
    index = {"i1": 0, "i2": 1}  # noqa: RUF012 - a fixed toy catalogue

    def item_of(self, text: str) -> str | None:
        return text if text in self.index else None


class NotAScorer:
    def fit(self, samples):  # pragma: no cover - never called
        return {}


def _ctx(tmp_path: Path, **parts) -> BuildContext:
    ctx = BuildContext(run_dir=tmp_path, seed=0, device="cpu", **parts)
    ctx.names.update(task="next_item", classifier="logreg", generator="causal")
    return ctx


def test_adagrpo_needs_an_item_scorer_classifier(tmp_path):
    generator, _, _ = grpo_batch()
    ctx = _ctx(tmp_path, task=Catalogue(), generator=generator, classifier=NotAScorer())
    with pytest.raises(PluginError) as err:
        build_adagrpo(AdaGRPOConfig(), ctx)
    message = str(err.value)
    assert "classifier 'logreg' (NotAScorer) lacks score(), score_all()" in message
    assert "optimizer 'adagrpo'" in message and "ItemScorer" in message


def test_adagrpo_needs_an_item_catalogue_task(tmp_path):
    generator, _, _ = grpo_batch()

    class Scorer:
        def score(self, histories, items): ...
        def score_all(self, histories): ...

    ctx = _ctx(tmp_path, task=object(), generator=generator, classifier=Scorer())
    with pytest.raises(PluginError, match=r"task 'next_item' \(object\) lacks items, index, "
                                          r"item_of\(\).*optimizer 'adagrpo'"):
        build_adagrpo(AdaGRPOConfig(), ctx)


def test_ranker_score_reward_and_ranker_declare_their_capabilities(tmp_path):
    with pytest.raises(PluginError, match=r"lacks score\(\), score_all\(\).*ranker_score"):
        build_ranker_score(RankerScoreConfig(),
                           _ctx(tmp_path, task=Catalogue(), classifier=NotAScorer()))
    with pytest.raises(PluginError, match=r"lacks items, index, item_of\(\).*classifier 'ranker'"):
        build_ranker(RankerConfig(), _ctx(tmp_path, task=object()))


def test_evaluation_uses_beam_search_only_as_a_declared_capability():
    class Beam:
        def beam_search(self, prompts, k):
            return [[(f"best{n}", -0.1), (f"next{n}", -0.2)][:k] for n in range(len(prompts))]

        def sample(self, prompts, n=1, temperature=1.0):  # pragma: no cover
            raise AssertionError("sampled although beam search is available")

    assert top_k_texts(Beam(), [Prompt("a"), Prompt("b")], 2) == [
        ["best0", "next0"], ["best1", "next1"]]
    generator, _, _ = grpo_batch()  # the tiny causal model has beam_search
    plain = type("Plain", (), {"sample": generator.sample})()  # ... this one has not
    out = top_k_texts(plain, [Prompt("a0 a1")], 2)
    assert len(out) == 1 and 1 <= len(out[0]) <= 2


# ------------------------------------------------------------------- GRPO minibatches


def _step(round_: int, step: int, generator) -> StepContext:
    return StepContext(task=None, generator=generator, classifier=None, reference=None,
                       round=round_, step=step, rng=np.random.default_rng(0))


def test_minibatch_order_is_seeded_by_seed_round_and_step():
    generator, _, _ = grpo_batch()
    opt = GRPOOptimizer(GRPOConfig(minibatch_size=4, epochs=3), generator, seed=5)
    orders = opt.minibatch_orders(16, round=1, step=2)
    assert len(orders) == 3 and all(sorted(o.tolist()) == list(range(16)) for o in orders)
    assert not torch.equal(orders[0], orders[1])  # a fresh permutation every epoch
    same = GRPOOptimizer(GRPOConfig(minibatch_size=4, epochs=3), generator, seed=5)
    assert all(torch.equal(a, b) for a, b in
               zip(orders, same.minibatch_orders(16, round=1, step=2), strict=True))
    # the old order was seeded by the step alone, so every round repeated it
    assert not torch.equal(orders[0], opt.minibatch_orders(16, round=2, step=2)[0])
    other_seed = GRPOOptimizer(GRPOConfig(minibatch_size=4, epochs=3), generator, seed=6)
    assert not torch.equal(orders[0], other_seed.minibatch_orders(16, round=1, step=2)[0])
    whole = GRPOOptimizer(GRPOConfig(epochs=2), generator).minibatch_orders(16, 1, 2)
    assert [o.tolist() for o in whole] == [list(range(16))] * 2


def test_dapo_divides_each_minibatch_by_its_own_tokens_and_metrics_average_all():
    generator, rollout, _ = grpo_batch(seed=1)
    rewards = Rewards.at_end(torch.linspace(-1, 1, rollout.batch_size), rollout)
    cfg = GRPOConfig(lr=0.0, beta=0.04, loss_type="dapo", minibatch_size=3, epochs=2)
    opt = GRPOOptimizer(cfg, generator, seed=0)
    advantages = group_advantages(rewards.total, rollout.group_ids, cfg.scale_rewards)
    expected = []
    with torch.no_grad():
        for order in opt.minibatch_orders(rollout.batch_size, round=4, step=1):
            for start in range(0, rollout.batch_size, 3):
                rows = order[start : start + 3]
                batch = rollout.select(rows)
                per_token, _ = per_token_grpo_loss(
                    generator.policy_outputs(batch).logprobs, batch.logprobs, advantages[rows],
                    batch.ref_logprobs, cfg.epsilon, cfg.epsilon, cfg.beta)
                mask = batch.response_mask.float()
                expected.append(float((per_token * mask).sum() / mask.sum()))
                whole = aggregate(per_token, mask, "dapo",
                                  num_items=rollout.response_mask.sum())  # the old normaliser
                assert float(whole) != pytest.approx(expected[-1])
    metrics = opt.update(rollout, rewards, _step(4, 1, generator))
    assert len(expected) == 2 * 3  # 8 rows in minibatches of 3, two epochs
    assert metrics["grpo/loss"] == pytest.approx(float(np.mean(expected)), rel=1e-5)
    assert metrics["grpo/loss"] != pytest.approx(expected[-1])  # not just the last minibatch


def test_grpo_step_is_guarded(tmp_path):
    generator, rollout, _ = grpo_batch(seed=2)
    opt = GRPOOptimizer(GRPOConfig(beta=0.0), generator)
    before = [p.detach().clone() for p in generator.parameters()]
    rewards = Rewards.at_end(torch.full((rollout.batch_size,), float("nan")), rollout)
    with pytest.raises(NonFiniteError, match="grpo loss is nan"):
        opt.update(rollout, rewards, _step(1, 1, generator))
    after = list(generator.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_ranker_fit_stops_on_a_non_finite_loss(tmp_path):
    from adagrpo_kit import write_beauty_fixture
    from advx_recsys import NextItemConfig, build_next_item

    folder = write_beauty_fixture(tmp_path / "data")
    task = build_next_item(NextItemConfig(path=str(folder / "seq.txt"), item_tokens="id"),
                           _ctx(tmp_path))
    ranker = build_ranker(RankerConfig(d_model=8, num_heads=2, num_layers=1, epochs=3,
                                       lr=1e30, dropout=0.0), _ctx(tmp_path, task=task))
    with pytest.raises(NonFiniteError, match=r"ranker (loss|gradient norm)"):
        ranker.fit(task.classifier_train())

"""Best-of-k by the generator's own label posterior (advx.label_specific), on hand-made
likelihoods; the loop's and the task's keys that use it; the build-time capability check."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from advx.errors import ConfigError
from advx.label_specific import label_posterior, most_label_specific
from advx.loop import LoopConfig
from advx.rollout import Prompt, Rollout, SequenceNLL

# log p(text | prompt asking for label), by (text, label)
LOG_P = {("on topic", 0): -6.0, ("on topic", 1): -2.0,
         ("off topic", 0): -1.0, ("off topic", 1): -5.0,
         ("vague", 0): -3.0, ("vague", 1): -3.0}


class Task:
    label_names = ("irrelevant", "relevant")

    def requested_label(self, prompt: Prompt) -> int:
        return prompt.meta["label"]

    def relabel(self, prompt: Prompt, label: int) -> Prompt:
        return Prompt(f"{label}:{prompt.meta['product']}", {**prompt.meta, "label": label})


class Generator:
    def __init__(self) -> None:
        self.scored = 0

    def nll(self, samples, temperature: float = 1.0) -> SequenceNLL:
        self.scored += len(samples)
        total = torch.tensor([-LOG_P.get((s.text, s.label), -9.0) for s in samples])
        return SequenceNLL(total=total, tokens=torch.ones(len(samples)))


def rollout(texts: list[str], labels: list[int]) -> Rollout:
    n = len(texts)
    prompts = [Prompt(f"{y}:p", {"label": y, "product": "p"}) for y in labels]
    zeros = torch.zeros(n, 2)
    return Rollout(prompts=prompts, prompt_ids=zeros.long(), prompt_mask=zeros.long(),
                   response_ids=zeros.long(), response_mask=torch.ones(n, 2).long(),
                   logprobs=zeros, texts=texts, group_ids=torch.arange(n))


def test_posterior_is_bayes_over_the_relabelled_prompts():
    r = rollout(["on topic", "off topic", "vague", ""], [1, 1, 0, 1])
    got = label_posterior(Generator(), Task(), r)
    # log p(y|q) = log p(q|y) - log(p(q|0) + p(q|1)), by hand
    expected = [-2.0 - math.log(math.exp(-6) + math.exp(-2)),
                -5.0 - math.log(math.exp(-1) + math.exp(-5)), math.log(0.5)]
    assert got[:3].tolist() == pytest.approx(expected, rel=1e-5)  # float32 scores
    assert got[3] == pytest.approx(math.log(0.5))  # empty: scored, finite (a reward may use it)


def test_most_label_specific_keeps_the_best_of_each_group_of_k():
    # two prompts x k = 3 candidates, prompt-major as generator.sample writes them
    texts = ["off topic", "on topic", "vague", "on topic", "vague", "off topic"]
    r = rollout(texts, [1, 1, 1, 0, 0, 0])
    generator = Generator()
    kept, posterior = most_label_specific(generator, Task(), r, k=3)
    assert kept.texts == ["on topic", "off topic"]
    assert [p.meta["label"] for p in kept.prompts] == [1, 0]
    assert posterior.exp().tolist() == pytest.approx(
        [1 / (1 + math.exp(-4)), 1 / (1 + math.exp(-4))])
    assert generator.scored == 2 * len(texts)  # one scoring pass per label
    # an empty response is never chosen while a candidate has text, even a worse one
    kept, _ = most_label_specific(Generator(), Task(), rollout(["", "off topic"], [1, 1]), k=2)
    assert kept.texts == ["off topic"]
    with pytest.raises(ValueError, match="not groups of k=4"):
        most_label_specific(generator, Task(), r, k=4)


def test_candidates_must_be_positive():
    with pytest.raises(ConfigError, match="augment_candidates: expected an integer >= 1"):
        LoopConfig(augment_candidates=0)


def test_the_loop_samples_k_per_augment_sample_and_keeps_one(monkeypatch):
    from advx import loop as loop_module
    from advx.loop import Experiment

    seen = {}

    def sample(generator, prompts, n, temperature):
        seen["n"] = n
        texts = ["off topic", "on topic"] * (len(prompts) * n // 2)
        return rollout(texts, [p.meta["label"] for p in prompts for _ in range(n)])

    monkeypatch.setattr(loop_module, "sample_sharded", sample)
    task = Task()
    task.augment_prompts = lambda round: [Prompt("1:p", {"label": 1, "product": "p"})]
    task.synthetic_samples = lambda r: r.samples()
    cfg = SimpleNamespace(augment_candidates=2, augment_samples=3, temperature=1.0,
                          augment_min_label_p=0.0, augment_mode="accumulate",
                          save_samples=False)
    experiment = SimpleNamespace(c=SimpleNamespace(generator=Generator(), task=task), cfg=cfg,
                                 state=SimpleNamespace(pool=[]))
    metrics = Experiment._augment(experiment, SimpleNamespace(round=1))
    assert seen["n"] == 6 and metrics["augment/new"] == 3
    assert [s.text for s in experiment.state.pool] == ["on topic"] * 3
    assert metrics["augment/label_posterior"] == pytest.approx(1 / (1 + math.exp(-4)))

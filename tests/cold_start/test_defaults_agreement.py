"""``gen/label_agreement_c0``: agreement of generated queries with the requested label under
the classifier frozen at the ``pretrain`` evaluation (advx_product_relevance/agreement.py)."""

from __future__ import annotations

import torch
from advx.rollout import Prompt, Sample
from advx_product_relevance.agreement import c0_agreement


class Flippable:
    """Predicts 1 for queries containing 'good', else 0; weight ``flip`` = 1 inverts it."""

    def __init__(self) -> None:
        self.flip = torch.tensor(0)

    def state_dict(self):
        return {"net": {"flip": self.flip}, "fits": 0}

    def load_state_dict(self, state):
        self.flip = state["net"]["flip"].clone()

    def predict_proba(self, samples):
        label = torch.tensor([int("good" in s.text) for s in samples]) ^ self.flip
        return torch.nn.functional.one_hot(label, 2).float()


class Task:
    label_names = ("irrelevant", "relevant")


def queries():  # requested labels 1, 1, 0, 0: C_0 agrees on 3 of 4
    texts, labels = ["good lamp", "lamp", "cheap lamp", "desk"], [1, 1, 0, 0]
    return [Sample(t, Prompt("p"), y) for t, y in zip(texts, labels, strict=True)]


# overall 3 of 4; per requested label: relevant 1 of 2 ("lamp" is judged 0), irrelevant 2 of 2
EXPECTED = {"gen/label_agreement_c0": 0.75, "gen/label_agreement_c0_relevant": 0.5,
            "gen/label_agreement_c0_irrelevant": 1.0}


def test_judge_is_the_classifier_frozen_at_pretrain():
    task, clf = Task(), Flippable()
    assert c0_agreement(task, "pretrain", clf, queries()) == EXPECTED
    clf.flip = torch.tensor(1)  # the classifier changes after round 1's refit ...
    assert c0_agreement(task, "round-1", clf, queries()) == EXPECTED
    assert int(clf.flip) == 1  # ... and keeps its own weights after being used as the judge


def test_a_label_never_requested_has_no_per_label_metric():
    only_relevant = queries()[:2]
    assert c0_agreement(Task(), "pretrain", Flippable(), only_relevant) == {
        "gen/label_agreement_c0": 0.5, "gen/label_agreement_c0_relevant": 0.5}


def test_no_snapshot_no_metric():
    """A run resumed past pretrain has no C_0: nothing is logged rather than a wrong judge."""
    assert c0_agreement(Task(), "round-2", Flippable(), queries()) == {}

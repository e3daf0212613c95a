"""advx.uncertainty: bootstrap SEs are deterministic, shrink with more units, leave the
training random streams alone, and the resolvable-difference warning fires once."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from advx.uncertainty import bootstrap_se, mean_se, resolvable, two_class, with_uncertainty
from sklearn.metrics import average_precision_score


def test_mean_se_is_deterministic_and_matches_the_binomial_formula():
    values = np.random.default_rng(1).random(400) < 0.3
    assert mean_se(values) == mean_se(values)
    p = values.mean()
    assert mean_se(values) == pytest.approx(math.sqrt(p * (1 - p) / len(values)), rel=0.15)


def test_se_shrinks_with_more_units():
    rng = np.random.default_rng(2)
    small, large = rng.random(100) < 0.5, rng.random(10_000) < 0.5
    assert mean_se(large) < mean_se(small) / 5  # sqrt(100) = 10x fewer → ~10x smaller
    truth_s, truth_l = rng.integers(0, 2, 100), rng.integers(0, 2, 4000)
    score_s, score_l = truth_s + rng.normal(0, 1, 100), truth_l + rng.normal(0, 1, 4000)
    se_small = bootstrap_se(average_precision_score, truth_s, score_s)
    se_large = bootstrap_se(average_precision_score, truth_l, score_l)
    assert se_large < se_small / 3


def test_resampling_leaves_the_global_random_streams_alone():
    np.random.seed(5)
    torch.manual_seed(5)
    expected_np, expected_torch = np.random.random(), torch.rand(1)
    np.random.seed(5)
    torch.manual_seed(5)
    bootstrap_se(np.mean, np.arange(50.0))
    mean_se(np.arange(50.0))
    assert np.random.random() == expected_np and torch.equal(torch.rand(1), expected_torch)


def test_degenerate_resamples_are_skipped_and_tiny_sets_give_nan():
    truth = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])  # a third of resamples: no positive
    score = np.linspace(0, 1, 12)  # the positive ranked anywhere: AP varies with the resample
    calls = []

    def recorded(t, s):
        calls.append(int(t.sum()))
        return average_precision_score(t, s)

    se = bootstrap_se(two_class(recorded), truth, score)
    assert se > 0 and calls and min(calls) >= 1  # no one-class resample reached the metric
    assert math.isnan(bootstrap_se(two_class(average_precision_score), np.zeros(12), score))
    assert math.isnan(mean_se([1.0]))
    assert mean_se([0.5, 0.5, 0.5]) == 0.0


def test_resolvable_and_the_warning(caplog):
    assert resolvable(0.01) == pytest.approx(0.0392)
    warned: set[str] = set()
    with caplog.at_level(logging.WARNING, logger="advx"):
        out = with_uncertainty({"hr": 0.1}, {"hr": 0.02, "ndcg": 0.02}, warn_keys=["hr"],
                               warned=warned)
        with_uncertainty({"hr": 0.1}, {"hr": 0.02}, warn_keys=["hr"], warned=warned)
        with_uncertainty({"x": 0.1}, {"x": 0.001}, warn_keys=["x"], warned=warned)
    assert out == {"hr": 0.1, "hr_se": 0.02, "hr_resolvable": pytest.approx(0.0784),
                   "ndcg_se": 0.02, "ndcg_resolvable": pytest.approx(0.0784)}
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and messages[0].startswith("hr: this evaluation resolves only")

"""advx.stats on numbers worked out by hand (and, for power, against G*Power's tables)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from advx import stats as advx_stats
from advx.stats import (
    BOOTSTRAP_MIN_N,
    bootstrap_min_n,
    describe,
    mean_ci,
    paired,
    paired_differences,
    paired_t_power,
    seeds_needed,
)

CONDITION = {0: 3.0, 1: 5.0, 2: 4.0, 3: 8.0}
BASELINE = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 9.0}  # seed 4 has no partner: left out


def test_differences_pair_by_seed_and_drop_unpaired_seeds():
    seeds, d = paired_differences(CONDITION, BASELINE)
    assert seeds == [0, 1, 2, 3]
    assert d.tolist() == [2.0, 3.0, 1.0, 4.0]


def test_paired_figures_by_hand():
    r = paired(CONDITION, BASELINE)
    # d = 2, 3, 1, 4: mean 2.5; squared deviations .25 + .25 + 2.25 + 2.25 = 5 → sd √(5/3)
    assert r.n == 4
    assert r.mean_diff == pytest.approx(2.5)
    assert r.sd_diff == pytest.approx(math.sqrt(5 / 3))
    # t = mean / (sd / √n) = 2.5 / (1.29099 / 2) = 3.87298; two-sided p with 3 df = 0.030466
    assert r.t_stat == pytest.approx(3.872983346)
    assert r.t_p == pytest.approx(0.030466291662)
    # Wilcoxon: every d positive → W = 0; exact two-sided p = 2 / 2^4
    assert r.w_stat == 0.0
    assert r.w_p == pytest.approx(2 / 16)
    # 4 pairs are too few for a 95% bootstrap interval: Student t's, 2.5 ± t_{.975,3}·sd/√4
    assert r.ci_method == "t"
    half = 3.182446305 * math.sqrt(5 / 3) / 2
    assert (r.ci_low, r.ci_high) == (pytest.approx(2.5 - half), pytest.approx(2.5 + half))


def test_bootstrap_interval_is_reproducible_and_near_the_t_interval_for_many_seeds():
    cond = {s: float(s * s % 7) for s in range(20)}
    base = dict.fromkeys(range(20), 0.0)
    a, b = paired(cond, base), paired(cond, base)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    t_low, t_high = mean_ci(list(cond.values()))
    assert a.ci_low == pytest.approx(t_low, abs=0.15)
    assert a.ci_high == pytest.approx(t_high, abs=0.15)
    assert a.ci_low < a.mean_diff < a.ci_high
    assert a.ci_method == "BCa"


def test_bootstrap_needs_enough_pairs_to_reach_its_confidence():
    # Every resample mean lies in [min d, max d], which holds the mean with probability at most
    # 1 - 2·2^-n: 0.9375 for 5 pairs (< 0.95), 0.96875 for 6.
    assert BOOTSTRAP_MIN_N == bootstrap_min_n(0.95) == 6
    assert bootstrap_min_n(0.9) == 5
    two = paired({0: 1.0, 1: 3.0}, {0: 0.0, 1: 0.0})  # d = 1, 3: BCa gave [1, 3], a 50% range
    assert two.ci_method == "t"
    assert (two.ci_low, two.ci_high) == mean_ci([1.0, 3.0])
    assert two.ci_low < 1.0 and two.ci_high > 3.0
    d = [0.5, 1.5, 1.0, 2.0, 0.2, 1.1]
    five = paired(dict(enumerate(d[:5])), dict.fromkeys(range(5), 0.0))
    six = paired(dict(enumerate(d)), dict.fromkeys(range(6), 0.0))
    assert (five.ci_method, six.ci_method) == ("t", "BCa")
    assert min(d) <= six.ci_low < six.mean_diff < six.ci_high <= max(d)


def test_a_non_finite_value_leaves_its_seed_out_instead_of_making_everything_nan():
    condition = {0: 3.0, 1: float("nan"), 2: 4.0, 3: 8.0}
    seeds, d = paired_differences(condition, BASELINE)
    assert seeds == [0, 2, 3] and d.tolist() == [2.0, 1.0, 4.0]
    r = paired(condition, {**BASELINE, 2: float("inf")})
    assert r.n == 2 and r.mean_diff == pytest.approx(3.0) and math.isfinite(r.t_p)


def test_undefined_figures_are_nan_not_errors():
    one = paired({0: 1.0}, {0: 0.0})
    assert one.n == 1 and one.mean_diff == 1.0
    assert all(math.isnan(v) for v in (one.sd_diff, one.ci_low, one.t_p, one.w_p))
    none = paired({0: 1.0}, {1: 0.0})
    assert none.n == 0 and math.isnan(none.mean_diff)
    constant = paired({0: 2.0, 1: 3.0, 2: 4.0}, {0: 1.0, 1: 2.0, 2: 3.0})  # d = 1, 1, 1
    assert constant.mean_diff == 1.0 and constant.sd_diff == 0.0
    assert math.isnan(constant.ci_low) and math.isnan(constant.t_p)
    zero = paired({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0})
    assert math.isnan(zero.w_p)


def test_describe_and_mean_ci_by_hand():
    s = describe([1.0, 2.0, 3.0])
    assert (s.n, s.mean, s.sd) == (3, 2.0, 1.0)
    assert math.isnan(describe([5.0]).sd) and describe([]).n == 0
    # mean ± t_{0.975, 2} · sd / √3, t_{0.975, 2} = 4.302653
    low, high = mean_ci([1.0, 2.0, 3.0])
    assert low == pytest.approx(2 - 4.302652730 / math.sqrt(3))
    assert high == pytest.approx(2 + 4.302652730 / math.sqrt(3))
    assert all(np.isnan(mean_ci([1.0])))


@pytest.mark.parametrize(("effect", "n"), [(0.5, 34), (0.8, 15), (1.0, 10)])
def test_seeds_needed_matches_gpower(effect, n):
    # G*Power 3.1, "means: difference from constant (matched pairs)", α = 0.05 two-sided,
    # power 0.8: dz = 0.5 → 34, 0.8 → 15, 1.0 → 10 (actual power 0.8031 at dz = 1, n = 10).
    assert seeds_needed(effect) == n
    assert paired_t_power(n, effect) >= 0.8 > paired_t_power(n - 1, effect)


def test_no_effect_needs_no_search(monkeypatch):
    # effect 0 (power stays at α) or NaN (a pilot with sd 0): None at once, not after 10,000
    # noncentral-t evaluations (seconds).
    def fail(*args, **kwargs):
        raise AssertionError("searched")

    monkeypatch.setattr(advx_stats, "paired_t_power", fail)
    assert seeds_needed(0.0) is None and seeds_needed(float("nan")) is None


def test_power_at_a_known_point():
    assert paired_t_power(10, 1.0) == pytest.approx(0.8030969, abs=1e-6)
    assert paired_t_power(10, 0.0) == pytest.approx(0.05)  # no effect: the test's level

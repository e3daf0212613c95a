"""The statistics of a comparison over seeds, written to read like their formulas.

A comparison runs every condition with the same seeds, so condition and baseline are *paired*
by seed: the seed fixes data order, initialisation and sampling noise for both. The honest
question is then about the per-seed differences ``d_s = x_s - b_s``, not about two independent
means: their mean, a 95% bootstrap confidence interval of that mean, and two paired tests
(Student's paired t, which assumes the d_s roughly normal, and the Wilcoxon signed-rank test,
which does not). Every function returns NaN where its figure is undefined (fewer than two
pairs, or differences that are all equal) rather than raising, so a report can always be made
while cells are still running.

The interval of mean(d) is the BCa bootstrap only from :data:`BOOTSTRAP_MIN_N` pairs on: every
bootstrap resample's mean lies in ``[min d, max d]``, and that range holds the true mean with
probability at most ``1 - 2 · 2^-n`` (for differences distributed symmetrically about their
mean): 50 % for 2 seeds, 75 % for 3, 94 % for 5. A "95 %" bootstrap interval of fewer seeds is
at best a 50–94 % one, whatever its resamples; below that the Student t interval (exact for
normal d) is given instead and ``Paired.ci_method`` says which it is.

Power (how many seeds a difference needs) uses the noncentral t distribution of the paired t
statistic: with effect size ``dz = mean(d) / sd(d)`` and ``n`` pairs, ``T ~ nct(n - 1, dz √n)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "BOOTSTRAP_MIN_N",
    "Paired",
    "Summary",
    "bootstrap_min_n",
    "describe",
    "mean_ci",
    "paired",
    "paired_differences",
    "paired_t_power",
    "seeds_needed",
]

NAN = float("nan")


@dataclass(frozen=True)
class Summary:
    """``n`` values, their mean and sample standard deviation (ddof = 1; NaN for n < 2)."""

    n: int
    mean: float
    sd: float


def describe(values: Sequence[float]) -> Summary:
    """Count, mean and sample sd of ``values`` (NaN where undefined, never an error)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else NAN
    sd = float(x.std(ddof=1)) if n >= 2 else NAN
    return Summary(n, mean, sd)


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean: ``mean ± t_{(1+c)/2, n-1} · sd / √n`` (the curves'
    bands). NaN for fewer than two values."""
    s = describe(values)
    if s.n < 2:
        return NAN, NAN
    half = stats.t.ppf((1 + confidence) / 2, s.n - 1) * s.sd / math.sqrt(s.n)
    return s.mean - half, s.mean + half


def paired_differences(
    condition: Mapping[int, float], baseline: Mapping[int, float]
) -> tuple[list[int], np.ndarray]:
    """The seeds both finished (sorted) and ``d_s = condition_s - baseline_s`` on them.

    A seed whose value is not finite (NaN, inf) on either side did not finish for this metric
    and is left out like a missing one: one NaN would otherwise make every figure NaN while
    ``n`` still counted it.
    """
    seeds = sorted(s for s in set(condition) & set(baseline)
                   if math.isfinite(condition[s]) and math.isfinite(baseline[s]))
    d = np.array([condition[s] - baseline[s] for s in seeds], dtype=float)
    return seeds, d


@dataclass(frozen=True)
class Paired:
    """A condition against the baseline over ``n`` shared seeds.

    Attributes:
        n: seeds both finished.
        mean_diff, sd_diff: mean and sd of ``d_s = condition_s - baseline_s``.
        ci_low, ci_high: the ``confidence`` interval of ``mean(d)``.
        t_stat, t_p: paired Student t (``scipy.stats.ttest_rel``), two-sided.
        w_stat, w_p: Wilcoxon signed-rank on ``d`` (``scipy.stats.wilcoxon``), two-sided.
        ci_method: ``"BCa"`` (bootstrap, from :func:`bootstrap_min_n` pairs on), ``"t"``
            (Student t, fewer pairs) or ``""`` (no interval: n < 2 or all d equal).
    """

    n: int
    mean_diff: float
    sd_diff: float
    ci_low: float
    ci_high: float
    t_stat: float
    t_p: float
    w_stat: float
    w_p: float
    ci_method: str = ""


def bootstrap_min_n(confidence: float = 0.95) -> int:
    """The fewest pairs whose bootstrap interval can reach ``confidence`` at all: the smallest
    ``n`` with ``1 - 2 · 2^-n >= confidence`` (the module docstring says why); 6 for 95 %."""
    n = 2
    while 1 - 2 * 0.5**n < confidence:
        n += 1
    return n


BOOTSTRAP_MIN_N = bootstrap_min_n(0.95)
"""6: with fewer seeds, :func:`paired` gives the Student t interval of mean(d)."""


def paired(
    condition: Mapping[int, float],
    baseline: Mapping[int, float],
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
) -> Paired:
    """Compare ``condition`` with ``baseline`` (each ``seed -> value``) on their shared seeds.

    The bootstrap resamples seeds (the d_s) with replacement, ``n_resamples`` times, with a
    fixed ``seed`` so that a report is reproducible; with fewer than
    ``bootstrap_min_n(confidence)`` pairs the interval is Student t's instead (``ci_method``).
    """
    seeds, d = paired_differences(condition, baseline)
    n = len(d)
    summary = describe(d)
    if n < 2:
        return Paired(n, summary.mean, NAN, NAN, NAN, NAN, NAN, NAN, NAN)
    x = np.array([condition[s] for s in seeds], dtype=float)
    b = np.array([baseline[s] for s in seeds], dtype=float)
    ci_low = ci_high = t_stat = t_p = w_stat = w_p = NAN
    ci_method = ""
    # All-equal differences (to rounding): no spread to resample, and t is undefined.
    if np.ptp(d) > 1e-12 * max(1.0, float(np.abs(d).max())):
        if n >= bootstrap_min_n(confidence):
            with warnings.catch_warnings():  # BCa may warn on few distinct resamples
                warnings.simplefilter("ignore")
                ci = stats.bootstrap((d,), np.mean, confidence_level=confidence,
                                     n_resamples=n_resamples, method="BCa",
                                     rng=np.random.default_rng(seed)).confidence_interval
            ci_low, ci_high, ci_method = float(ci.low), float(ci.high), "BCa"
        else:
            low, high = mean_ci(d.tolist(), confidence)
            ci_low, ci_high, ci_method = float(low), float(high), "t"
        t = stats.ttest_rel(x, b)
        t_stat, t_p = float(t.statistic), float(t.pvalue)
    if np.any(d != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = stats.wilcoxon(d)
        w_stat, w_p = float(w.statistic), float(w.pvalue)
    return Paired(n, summary.mean, summary.sd, ci_low, ci_high, t_stat, t_p, w_stat, w_p,
                  ci_method)


def paired_t_power(n: int, effect: float, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t test with ``n`` seeds for effect ``dz = mean(d)/sd(d)``:

        P(|T| > t_{1-α/2, n-1})  with  T ~ nct(df = n - 1, nc = dz √n)
    """
    if n < 2:
        return NAN
    df, nc = n - 1, effect * math.sqrt(n)
    crit = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def seeds_needed(effect: float, power: float = 0.8, alpha: float = 0.05,
                 max_n: int = 10_000) -> int | None:
    """The fewest seeds for which the paired t test reaches ``power`` (None above ``max_n``,
    and at once for no effect or a non-finite one: no number of seeds detects it)."""
    if not math.isfinite(effect) or effect == 0:
        return None
    for n in range(2, max_n + 1):
        if paired_t_power(n, effect, alpha) >= power:
            return n
    return None

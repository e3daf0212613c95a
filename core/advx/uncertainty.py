"""Standard errors of evaluation metrics, and whether an evaluation can resolve a difference.

Every metric a task reports is an estimate from a finite evaluation set (the cold products'
queries, the evaluated users, the generated samples). Its bootstrap standard error — the
spread of the metric over evaluation sets resampled with replacement from the evaluated
units — is logged beside it as ``<metric>_se``, and ``<metric>_resolvable`` = 2 × 1.96 × SE:
two runs whose metrics differ by less than that cannot be told apart by this evaluation. It is
the difference at which the two runs' 95 % intervals (± 1.96 SE each) stop overlapping — a
deliberately cautious criterion: the 95 % interval of the difference of two independent
estimates is only ± 1.96 × √2 × SE ≈ ± 2.77 SE (3.92 SE corresponds to p ≈ 0.006, not
0.05), and two runs scored on the same units are correlated, which narrows it further. When
it exceeds the task's documented
threshold (``RESOLVABLE_WARN``: 0.02 absolute for PR-AUC / HR / NDCG / BLEU), the task logs a
warning: the evaluation is too small for the differences the recipes are about.

Determinism: every resampling uses its own ``numpy.random.default_rng(seed)`` (fixed seed
``SE_SEED`` by default), so the same evaluation gives the same SE and the training random
streams are never touched.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from advx.distributed import is_main_process

__all__ = [
    "RESOLVABLE_WARN",
    "SE_RESAMPLES",
    "SE_SEED",
    "bootstrap_se",
    "mean_se",
    "resolvable",
    "two_class",
    "with_uncertainty",
]

log = logging.getLogger("advx")

SE_RESAMPLES = 200
"""Bootstrap resamples per SE: the SE's own relative error is about 1/sqrt(2·200) = 5 %."""

SE_SEED = 0
"""Seed of the evaluation's resampling generator (independent of the run's seed)."""

RESOLVABLE_WARN = 0.02
"""A ``_resolvable`` above this (absolute, on 0–1 metrics) triggers the warning."""


def mean_se(values: Sequence[float] | np.ndarray, *, seed: int = SE_SEED,
            n_resamples: int = SE_RESAMPLES) -> float:
    """Bootstrap SE of the mean of per-unit ``values`` (HR/NDCG per user, BLEU per sample),
    with :func:`scipy.stats.bootstrap` (vectorised over resamples). NaN for fewer than 2 units;
    0.0 for constant values (no spread to resample)."""
    from scipy.stats import bootstrap

    data = np.asarray(values, dtype=float)
    if data.size < 2:
        return math.nan
    if np.all(data == data[0]):
        return 0.0
    result = bootstrap((data,), np.mean, n_resamples=n_resamples, vectorized=True,
                       method="percentile", rng=np.random.default_rng(seed))
    return float(result.standard_error)


def bootstrap_se(statistic: Callable[..., float], *arrays: Sequence[Any] | np.ndarray,
                 seed: int = SE_SEED, n_resamples: int = SE_RESAMPLES) -> float:
    """Bootstrap SE of ``statistic(*arrays)`` resampling the rows of all arrays together.

    Hand-written (not ``scipy.stats.bootstrap``) for statistics that are not a mean and not
    vectorisable — PR-AUC / ROC-AUC (a ranking of the whole resample), a ratio of sums
    (NLL per token) — and because a resample can be degenerate (one class only: PR-AUC is
    undefined); such resamples raise ``ValueError`` or give NaN and are skipped. NaN when
    fewer than half of the resamples were usable.
    """
    columns = [np.asarray(a) for a in arrays]
    n = len(columns[0])
    if n < 2:
        return math.nan
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_resamples):
        idx = rng.integers(n, size=n)
        try:
            with warnings.catch_warnings():  # a degenerate resample is skipped, not reported
                warnings.simplefilter("ignore")
                value = float(statistic(*(c[idx] for c in columns)))
        except ValueError:
            continue
        if math.isfinite(value):
            values.append(value)
    if len(values) < n_resamples / 2:
        return math.nan
    return float(np.std(values, ddof=1))


def two_class(metric: Callable[..., float]) -> Callable[..., float]:
    """``metric(truth, score)`` that raises ValueError on a resample holding one class only
    (scikit-learn would warn and return 0 or NaN, which would bias the SE)."""
    def checked(truth: np.ndarray, score: np.ndarray) -> float:
        if len(np.unique(truth)) < 2:
            raise ValueError("one class in this resample")
        return float(metric(truth, score))

    return checked


def resolvable(se: float) -> float:
    """The smallest difference this evaluation resolves: 2 × 1.96 × SE (where two 95 %
    intervals stop overlapping; the module docstring says why that is on the cautious side)."""
    return 2 * 1.96 * se


def with_uncertainty(metrics: Mapping[str, float], ses: Mapping[str, float], *,
                     warn_keys: Sequence[str] = (), threshold: float = RESOLVABLE_WARN,
                     warned: set[str] | None = None) -> dict[str, float]:
    """``metrics`` plus ``<k>_se`` and ``<k>_resolvable`` for every ``k`` in ``ses``; a
    warning (once per key when ``warned`` is given) for each of ``warn_keys`` whose
    ``_resolvable`` exceeds ``threshold``."""
    out = dict(metrics)
    for key, se in ses.items():
        out[f"{key}_se"] = float(se)
        out[f"{key}_resolvable"] = resolvable(float(se))
        if key in warn_keys and math.isfinite(se) and resolvable(se) > threshold:
            if not is_main_process():  # every rank computes it; one warning is enough
                continue
            if warned is not None and key in warned:
                continue
            if warned is not None:
                warned.add(key)
            log.warning("%s: this evaluation resolves only differences above %.3g "
                        "(2 x 1.96 x SE, SE = %.3g; warned above %.3g): evaluate on more units "
                        "to tell runs apart", key, resolvable(se), se, threshold)
    return out

"""BLEU-n and self-BLEU-n exactly as Texygen computes them, made fast.

Texygen's metric is the mean over hypotheses of
``nltk.translate.bleu_score.sentence_bleu(references, hypothesis, weights=(1/n,)*n,
smoothing_function=SmoothingFunction().method1)`` with every reference sentence (the test
set for BLEU; the other generated sentences for self-BLEU). nltk recounts the n-grams of all
references for every hypothesis (10,000 × 1,000 sentence scans for one COCO evaluation), so we
count once: a clipped count only needs, per n-gram, the maximum count over references, and
the brevity penalty only the multiset of reference lengths. The arithmetic (modified
precision, ``method1`` smoothing with epsilon 0.1, closest reference length, geometric mean)
follows nltk 3.x, and ``tests/seqgan/test_tasks.py`` checks equality with nltk's
``sentence_bleu`` on random corpora. nltk (not sacrebleu) because the Texygen numbers we
compare with are nltk sentence-BLEU averages; sacrebleu's corpus BLEU is a different statistic.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

EPSILON = 0.1  # nltk SmoothingFunction(epsilon=0.1).method1


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _closest_length(lengths: Counter, hyp_len: int) -> int:
    """nltk ``closest_ref_length``: min by (|r - h|, r)."""
    return min(lengths, key=lambda r: (abs(r - hyp_len), r))


def _sentence_score(
    hyp: Sequence[str], max_counts: list[dict], ref_len: int, order: int
) -> float:
    """nltk sentence_bleu for one hypothesis given per-order reference maxima."""
    hyp_len = len(hyp)
    if hyp_len == 0:
        return 0.0
    log_p = 0.0
    numerators = []
    for n in range(1, order + 1):
        counts = _ngrams(hyp, n)
        clipped = sum(min(c, max_counts[n - 1].get(g, 0)) for g, c in counts.items())
        numerators.append((clipped, max(1, sum(counts.values()))))
    if numerators[0][0] == 0:  # nltk returns 0 when no unigram matches
        return 0.0
    for clipped, total in numerators:
        p = clipped / total if clipped else EPSILON / total
        log_p += math.log(p) / order
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return bp * math.exp(log_p)


def bleu(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]], order: int):
    """Mean sentence BLEU-``order`` of each hypothesis against all references (Texygen BLEU)."""
    scores = sentence_bleus(hypotheses, references, order)
    return sum(scores) / max(len(scores), 1)


def sentence_bleus(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]],
                   order: int) -> list[float]:
    """Each hypothesis's sentence BLEU-``order`` against all references (the units a
    bootstrap SE of BLEU resamples)."""
    return References(references, order).sentence_bleus(hypotheses, order)


class References:
    """A reference set counted once: per n-gram its maximum count over the references (up to
    ``max_order``) and the multiset of their lengths. An evaluation scores several sample sets
    (one per temperature, the baselines) at several orders against the same 10,000 test
    captions; counting them once per call was a fifth of a COCO evaluation (profiled)."""

    def __init__(self, references: Sequence[Sequence[str]], max_order: int) -> None:
        self.max_order = max_order
        self.max_counts: list[dict] = [{} for _ in range(max_order)]
        for ref in references:
            for n in range(1, max_order + 1):
                table = self.max_counts[n - 1]
                for gram, count in _ngrams(ref, n).items():
                    if count > table.get(gram, 0):
                        table[gram] = count
        self.lengths = Counter(len(r) for r in references)

    def sentence_bleus(self, hypotheses: Sequence[Sequence[str]], order: int) -> list[float]:
        """Each hypothesis's sentence BLEU-``order`` (``order`` <= ``max_order``)."""
        if not 1 <= order <= self.max_order:
            raise ValueError(f"BLEU order {order}: these references were counted up to "
                             f"{self.max_order}")
        return [_sentence_score(h, self.max_counts, _closest_length(self.lengths, len(h)), order)
                for h in hypotheses]


def self_bleu(sentences: Sequence[Sequence[str]], order: int) -> float:
    """Mean BLEU-``order`` of each sentence against all the others (Texygen self-BLEU)."""
    scores = self_bleus(sentences, order)
    return sum(scores) / max(len(scores), 1)


def self_bleus(sentences: Sequence[Sequence[str]], order: int) -> list[float]:
    """Each sentence's BLEU-``order`` against all the others (its self-BLEU terms).

    The maximum count over "all others" needs the top two counts of each n-gram and which
    sentence holds the top one.
    """
    top: list[dict] = [{} for _ in range(order)]  # gram -> (best, owner, second)
    for index, sent in enumerate(sentences):
        for n in range(1, order + 1):
            table = top[n - 1]
            for gram, count in _ngrams(sent, n).items():
                best, owner, second = table.get(gram, (0, -1, 0))
                if count > best:
                    table[gram] = (count, index, best)
                elif count > second:
                    table[gram] = (best, owner, count)
    lengths = Counter(len(s) for s in sentences)
    scores = []
    for index, sent in enumerate(sentences):
        maxima = [
            _Others(top[n], index) for n in range(order)
        ]
        others = lengths.copy()
        others[len(sent)] -= 1
        others = +others
        if not others:
            continue
        scores.append(_sentence_score(sent, maxima, _closest_length(others, len(sent)), order))
    return scores


class _Others:
    """Read-only view: the maximum count of a gram over all sentences but ``index``."""

    def __init__(self, table: dict, index: int) -> None:
        self.table, self.index = table, index

    def get(self, gram, default=0):
        entry = self.table.get(gram)
        if entry is None:
            return default
        best, owner, second = entry
        return second if owner == self.index else best

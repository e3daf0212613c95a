"""Reference points for the text tasks: a unigram language model and real held-out text.

A BLEU or NLL number alone does not say whether a generator learned anything beyond word
frequencies. Two baselines, computed once per run with the model's evaluation sizes:

* ``unigram``: the training corpus's token frequencies as a language model (each token drawn
  independently; on ``text_corpus`` an end-of-sentence token ends a sentence, as the word
  generators' ``</s>`` does; on ``oracle_lm`` every sequence has the oracle's fixed length).
  Its samples get BLEU / self-BLEU (corpus) or NLL-oracle (oracle) like the model's; its
  NLL-test is its per-token NLL of the held-out sentences, end token included on the corpus,
  with add-one smoothing over the training vocabulary plus one unknown token (so a test word
  never seen in training has a finite cost).
* ``real``: real text the model never saw as a reference — BLEU / self-BLEU of held-out real
  sentences, as many as the model's samples (the ceiling a perfect generator reaches); on the
  oracle, NLL-oracle of held-out oracle samples (the oracle's entropy, NLL-oracle's floor).

Sampling uses its own ``numpy.random.default_rng(seed)``: the baselines are deterministic and
never touch the training random streams.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = ["EOS", "UNK", "Unigram"]

EOS = "</s>"
UNK = "<unk>"


class Unigram:
    """Token frequencies of ``sentences`` (lists of tokens) as a language model."""

    def __init__(self, sentences: Sequence[Sequence[str]], *, eos: bool = True) -> None:
        self.eos = eos
        counts: Counter = Counter(t for s in sentences for t in s)
        if eos:
            counts[EOS] += len(sentences)
        self.tokens = sorted(counts)
        total = sum(counts.values())
        self.probs = np.array([counts[t] / total for t in self.tokens])
        # add-one smoothing for scoring: every training token and one unknown token
        denominator = total + len(self.tokens) + 1
        self.smoothed = {t: (counts[t] + 1) / denominator for t in self.tokens}
        self.unknown = 1 / denominator
        self.max_len = max((len(s) for s in sentences), default=1)

    def sample(self, num: int, seed: int, length: int = 0) -> list[list[str]]:
        """``num`` sentences: ``length`` tokens each when > 0, else tokens until the end
        token (at most the longest training sentence)."""
        rng = np.random.default_rng(seed)
        if length:
            picks = rng.choice(len(self.tokens), size=(num, length), p=self.probs)
            return [[self.tokens[i] for i in row] for row in picks]
        out: list[list[str]] = []
        draws = rng.choice(len(self.tokens), size=(num, self.max_len + 1), p=self.probs)
        for row in draws:
            sentence: list[str] = []
            for i in row:
                token = self.tokens[i]
                if token == EOS or len(sentence) == self.max_len:
                    break
                sentence.append(token)
            out.append(sentence)
        return out

    def nll(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Per sentence: total NLL (nats) and tokens scored (end token included when the
        model has one), for a per-token NLL = sum(totals) / sum(tokens)."""
        totals, counts = [], []
        for sentence in sentences:
            scored = [*sentence, EOS] if self.eos else list(sentence)
            totals.append(-sum(math.log(self.smoothed.get(t, self.unknown)) for t in scored))
            counts.append(len(scored))
        return np.array(totals), np.array(counts, dtype=float)

"""Trivial baselines for the cold-start relevance classifier, with no training at all.

A classifier's cold-start PR-AUC means little on its own: a constant score already gets the
positive rate, and the query's words appearing in the product title already rank relevant
queries well. These scores are computed on exactly the rows the model's ``cold/pr_auc`` is
computed on (the cold products' real queries), once per run, and logged as ``baseline/...``:

* ``chance``: a constant score; its PR-AUC is the positive rate, its ROC-AUC 0.5.
* ``word_overlap``: the fraction of the query's words (lower-cased ``\\w+`` tokens) that occur
  in the product title (the first product field when there is no ``title``).
* ``bm25``: Okapi BM25 (``rank_bm25.BM25Okapi``, k1 = 1.5, b = 0.75) of the query against the
  product's document (all its fields joined), IDF over every product of the catalogue (their
  metadata is known at training time; no query is part of the corpus).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
from advx.uncertainty import bootstrap_se, two_class
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = ["bm25_scores", "relevance_baselines", "tokens", "word_overlap"]

_WORD = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens (``\\w+``)."""
    return _WORD.findall(text.lower())


def word_overlap(query: str, title: str) -> float:
    """Share of the query's distinct words that occur in the title (0 for an empty query)."""
    words = set(tokens(query))
    return len(words & set(tokens(title))) / len(words) if words else 0.0


def _document(fields: Mapping[str, str]) -> str:
    return " ".join(v for v in fields.values() if v)


def bm25_scores(queries: Sequence[str], product_ids: Sequence[str],
                products: Mapping[str, Mapping[str, str]]) -> np.ndarray:
    """BM25 score of each query against its own product's document."""
    from rank_bm25 import BM25Okapi

    ids = sorted(products)
    position = {p: i for i, p in enumerate(ids)}
    corpus = [tokens(_document(products[p])) or ["<empty>"] for p in ids]
    model = BM25Okapi(corpus)
    return np.array([float(model.get_batch_scores(tokens(q), [position[p]])[0])
                     for q, p in zip(queries, product_ids, strict=True)])


def _ranking(name: str, truth: np.ndarray, score: np.ndarray) -> dict[str, float]:
    return {
        f"baseline/{name}/pr_auc": float(average_precision_score(truth, score)),
        f"baseline/{name}/pr_auc_se": bootstrap_se(two_class(average_precision_score), truth,
                                                    score),
        f"baseline/{name}/roc_auc": float(roc_auc_score(truth, score)),
        f"baseline/{name}/roc_auc_se": bootstrap_se(two_class(roc_auc_score), truth, score),
    }


def relevance_baselines(queries: Sequence[str], product_ids: Sequence[str],
                        truth: Sequence[int],
                        products: Mapping[str, Mapping[str, str]]) -> dict[str, float]:
    """``baseline/{chance,word_overlap,bm25}/{pr_auc,roc_auc}`` (and ``_se``) of the rows
    (query, product, binary truth: 1 = the positive class)."""
    y = np.asarray(truth, dtype=int)
    rate = float(y.mean())
    out = {
        "baseline/chance/pr_auc": rate,  # average precision of a constant score
        # SE of the positive rate over resampled rows: the SE of chance's PR-AUC
        "baseline/chance/pr_auc_se": bootstrap_se(np.mean, y),
        "baseline/chance/roc_auc": 0.5,
    }
    titles = [products[p].get("title") or next(iter(products[p].values()), "")
              for p in product_ids]
    overlap = np.array([word_overlap(q, t) for q, t in zip(queries, titles, strict=True)])
    out.update(_ranking("word_overlap", y, overlap))
    out.update(_ranking("bm25", y, bm25_scores(queries, product_ids, products)))
    return out

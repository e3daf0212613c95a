"""Items as token sequences, and back.

``id`` tokens: item ``123`` is the single token ``i123``. ``semantic`` ids: every item gets a
few code levels (``a3 b14 c7``) from an item embedding, by hierarchical k-means
(``semantic_ids: kmeans``) or by TIGER's RQ-VAE (``semantic_ids: rqvae``, see ``rqvae.py``),
plus a last disambiguation level (``d0``, ``d1`` …) for items that share all codes (TIGER's
recipe). The
embedding is a TF-IDF of the item's attribute ids (``Beauty_item2attributes.json``) reduced
by truncated SVD, optionally concatenated with item co-occurrence in the TRAINING sequences.

Either way a generated token sequence may name no item (``a3 b14`` alone, ``a3 b99 c1 d0``,
``i123 i7``): :meth:`ItemCodec.item_of` returns None and that output counts as a
hallucination.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from advx.errors import DataError

__all__ = ["ItemCodec", "disambiguate", "item_vectors", "load_attributes", "semantic_codes"]

LEVEL_PREFIX = "abcdefgh"


def load_attributes(path: Path, items: Iterable[str]) -> dict[str, list[int]]:
    """``item -> [attribute ids]``; every item must have an entry."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"task.attributes: no such file {str(path)!r} (item id -> [attribute ids])")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{path}: expected a non-empty JSON object item id -> [attribute ids]")
    missing = [item for item in items if item not in raw]
    if missing:
        raise DataError(
            f"{path}: {len(missing)} item id(s) of the interaction data are unknown to the "
            f"attributes file (e.g. {missing[:3]}); fix the ids, or set task.item_tokens: id."
        )
    return {str(k): [int(a) for a in v] for k, v in raw.items()}


def _hierarchical_kmeans(
    vectors: np.ndarray, codebook: Sequence[int], seed: int
) -> np.ndarray:
    """``[N, L]`` codes: k-means with ``codebook[0]`` clusters, then within each cluster
    ``codebook[1]`` clusters, and so on (clusters smaller than k get one code per member)."""
    import warnings

    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    codes = np.zeros((len(vectors), len(codebook)), dtype=np.int64)

    def split(rows: np.ndarray, level: int) -> None:
        if level == len(codebook):
            return
        k = min(codebook[level], len(rows))
        if k <= 1:
            labels = np.zeros(len(rows), dtype=np.int64)
        else:
            with warnings.catch_warnings():  # duplicate vectors: fewer distinct clusters than k
                warnings.simplefilter("ignore", ConvergenceWarning)
                labels = KMeans(n_clusters=k, n_init=1, random_state=seed, max_iter=50)
                labels = labels.fit_predict(vectors[rows])
        codes[rows, level] = labels
        for c in np.unique(labels):
            split(rows[labels == c], level + 1)

    split(np.arange(len(vectors)), 0)
    return codes


def item_vectors(
    items: Sequence[str],
    attributes: dict[str, list[int]] | None,
    train_sequences: Iterable[Sequence[str]],
    embedding: str,
    dim: int,
    seed: int,
) -> np.ndarray:
    """``[N, ≤dim]`` L2-normalised item embedding: TF-IDF of the attribute ids and/or of the
    adjacent-item co-occurrence in the training sequences, reduced by truncated SVD."""
    from scipy import sparse
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.preprocessing import normalize

    index = {item: i for i, item in enumerate(items)}
    blocks = []
    if embedding in ("attributes", "both"):
        if attributes is None:
            raise DataError("task.embedding uses attributes but task.attributes is not set")
        rows, cols = [], []
        for item in items:
            for a in attributes[item]:
                rows.append(index[item])
                cols.append(a)
        matrix = sparse.csr_matrix(
            (np.ones(len(rows)), (rows, cols)), shape=(len(items), max(cols, default=0) + 1)
        )
        blocks.append(TfidfTransformer().fit_transform(matrix))
    if embedding in ("cooccurrence", "both"):
        rows, cols = [], []
        for seq in train_sequences:  # adjacent items in the training sequences
            ids = [index[i] for i in seq if i in index]
            for a, b in itertools.pairwise(ids):
                rows += [a, b]
                cols += [b, a]
        matrix = sparse.csr_matrix(
            (np.ones(len(rows)), (rows, cols)), shape=(len(items), len(items))
        )
        blocks.append(TfidfTransformer().fit_transform(matrix))
    if not blocks:
        raise DataError(
            f"task.embedding must be attributes, cooccurrence or both, got {embedding!r}"
        )
    matrix = sparse.hstack(blocks).tocsr()
    n_components = max(1, min(dim, matrix.shape[1] - 1, len(items) - 1))
    vectors = TruncatedSVD(n_components=n_components, random_state=seed).fit_transform(matrix)
    return normalize(vectors)


def disambiguate(items: Sequence[str], codes: np.ndarray) -> dict[str, tuple[int, ...]]:
    """TIGER's extra digit: items sharing all ``codes`` get 0, 1, 2 … in catalogue order,
    so every item's full code is unique."""
    seen: dict[tuple[int, ...], int] = {}
    out = {}
    for item, row in zip(items, codes, strict=True):
        prefix = tuple(int(c) for c in row)
        out[item] = (*prefix, seen.get(prefix, 0))
        seen[prefix] = seen.get(prefix, 0) + 1
    return out


def semantic_codes(
    items: Sequence[str],
    attributes: dict[str, list[int]] | None,
    train_sequences: Iterable[Sequence[str]],
    codebook: Sequence[int],
    embedding: str,
    dim: int,
    seed: int,
    method: str = "kmeans",
    rqvae: dict | None = None,
) -> dict[str, tuple[int, ...]]:
    """Codes per item: ``codebook`` levels (hierarchical k-means, or an RQ-VAE trained with
    the ``rqvae`` keyword arguments of :func:`advx_recsys.rqvae.rqvae_codes`) + a
    disambiguation index."""
    vectors = item_vectors(items, attributes, train_sequences, embedding, dim, seed)
    if method == "rqvae":
        from advx_recsys.rqvae import cached_rqvae_codes

        codes = cached_rqvae_codes(vectors, codebook, seed=seed, **(rqvae or {}))
    else:
        codes = _hierarchical_kmeans(vectors, codebook, seed)
    return disambiguate(items, codes)


class ItemCodec:
    """Two-way map between items and their token strings."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self._text = tokens
        self._item = {text: item for item, text in tokens.items()}
        if len(self._item) != len(self._text):
            raise ValueError("two items share one token sequence")

    @classmethod
    def plain(cls, items: Iterable[str]) -> ItemCodec:
        return cls({item: f"i{item}" for item in items})

    @classmethod
    def from_codes(cls, codes: dict[str, tuple[int, ...]]) -> ItemCodec:
        return cls({
            item: " ".join(f"{LEVEL_PREFIX[level]}{c}" for level, c in enumerate(code))
            for item, code in codes.items()
        })

    @property
    def items(self) -> list[str]:
        return list(self._text)

    def text_of(self, item: str) -> str:
        return self._text[item]

    def texts(self) -> list[str]:
        """Every item's token string (the valid responses of a constrained decoder)."""
        return list(self._item)

    def item_of(self, text: str) -> str | None:
        """The item a generated text names, or None (a hallucination)."""
        return self._item.get(" ".join(text.split()))

    def render(self, items: Iterable[str]) -> str:
        return " ".join(self._text[i] for i in items)

    def __len__(self) -> int:
        return len(self._text)

"""Constrained beam search over a closed set of responses (generative retrieval's catalogue).

``generate``'s ``prefix_allowed_tokens_fn`` calls Python once per beam and step, which doubled
the time of evaluating every Beauty user; here the allowed responses become one child table
of a prefix trie, and :class:`TrieConstraint` walks every beam through it as tensor indexing.
Used by the ``causal`` and ``seq2seq`` generators' ``beam_search(..., allowed=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor
from transformers import LogitsProcessor

__all__ = ["CatalogueTrie", "TrieConstraint", "beam_rows", "prefix_trie"]


def prefix_trie(responses: Iterable[Sequence[int]], vocab_size: int,
                device: torch.device | str = "cpu") -> Tensor:
    """``[nodes, vocab_size]`` child table of the prefix trie over token-id ``responses``
    (each ending with its eos): ``children[node, token]`` is the node reached by writing
    ``token`` at ``node``, -1 where that token leaves the trie; node 0 is the root."""
    edges: dict[tuple[int, int], int] = {}
    for tokens in responses:
        node = 0
        for token in tokens:
            node = edges.setdefault((node, int(token)), len(edges) + 1)
    children = torch.full((len(edges) + 1, vocab_size), -1, dtype=torch.int32)
    if edges:
        keys = torch.tensor(list(edges), dtype=torch.long)
        children[keys[:, 0], keys[:, 1]] = torch.tensor(list(edges.values()), dtype=torch.int32)
    return children.to(device)


class TrieConstraint(LogitsProcessor):
    """Constrained decoding as one tensor walk: each beam's generated suffix (after the
    ``width`` columns that precede the response: the prompt of a decoder-only model, the
    decoder start token of an encoder-decoder) is followed through the trie's child table,
    and every token that is not a child of the reached node gets -inf. A beam off the trie
    (or finished) may only write eos."""

    def __init__(self, children: Tensor, width: int, eos_id: int) -> None:
        self.children, self.width, self.eos_id = children, width, eos_id

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        node = torch.zeros(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
        alive = torch.ones_like(node, dtype=torch.bool)
        for column in range(self.width, input_ids.shape[1]):
            child = self.children[node, input_ids[:, column]].long()
            alive &= child >= 0
            node = child.clamp(min=0)
        allowed = torch.zeros_like(scores, dtype=torch.bool)  # the model may have more columns
        width = min(scores.shape[1], self.children.shape[1])
        allowed[:, :width] = ((self.children[node] >= 0) & alive[:, None])[:, :width]
        allowed[~allowed.any(-1), self.eos_id] = True
        return scores.masked_fill(~allowed, float("-inf"))


class CatalogueTrie:
    """The trie of the last catalogue asked for, kept while the same ``allowed`` object comes
    back (an evaluation passes one catalogue to every beam-search call)."""

    def __init__(self) -> None:
        self._allowed: object = None
        self._children: Tensor | None = None

    def get(self, allowed: Sequence[str], tokens: Callable[[str], Sequence[int]],
            vocab_size: int, device: torch.device | str) -> Tensor:
        """The child table of ``allowed``; ``tokens`` writes one response as token ids with
        its eos, as the generator's decoding produces them."""
        if self._children is None or self._allowed is not allowed:
            self._children = prefix_trie((tokens(text) for text in allowed), vocab_size, device)
            self._allowed = allowed
        return self._children


def beam_rows(texts: Sequence[str], scores: Sequence[float],
              k: int) -> list[list[tuple[str, float]]]:
    """``generate``'s ``num_return_sequences=k`` output (prompt-major, best first) as one list
    of ``(text, sequence log-prob)`` per prompt: ``beam_search``'s return value."""
    return [list(zip(texts[i : i + k], scores[i : i + k], strict=True))
            for i in range(0, len(texts), k)]

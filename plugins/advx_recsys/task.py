"""Task ``next_item``: generative sequential recommendation with leave-one-out evaluation.

Prompt text: the user's last ``history`` items rendered as item tokens (oldest first).
Target text: the next item's tokens. ``Prompt.meta`` keys (documented contract for the
ranker, the ``ranker_score`` reward and the ``adagrpo`` optimizer):

* ``user``: user id; ``history``: tuple of item ids (the FULL history, oldest first);
* ``target``: the ground-truth next item id; ``target_text``: its token string;
* ``split``: ``train`` / ``valid`` / ``test``.

Evaluation (``valid/…`` and ``test/…``): top-``topk`` responses per user by beam search over
the policy (``generator.beam_search(prompts, k)`` when the generator has the
:class:`advx.components.SupportsBeamSearch` capability, else the ``2k`` most likely of sampled
responses), then HR@5, HR@10, NDCG@10 and ``hallucination``: the share
of returned sequences that map to no item (``hallucination@1``: of the top-1 only).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from advx.choices import Choice
from advx.components import BuildContext, Components, Generator, SupportsBeamSearch
from advx.distributed import shard_bounds, shard_map, world_size
from advx.errors import ConfigError, DataError
from advx.rollout import Prompt, Rollout, Sample

from advx_recsys.baselines import popularity, popularity_baselines, ranking_uncertainty
from advx_recsys.data import Example, leave_one_out, read_sequences, read_table
from advx_recsys.inputs import cap_history, cap_train_pairs, resolve_attributes
from advx_recsys.items import ItemCodec, load_attributes, semantic_codes

__all__ = ["NextItemConfig", "NextItemTask", "build_next_item", "ranking_metrics"]

BEAUTY = "../shared/data/amazon_beauty"


class TableFormat(Choice):
    """``task.format``: one user a line (``sequences``) or (user, item, time) rows."""

    sequences = "sequences"
    table = "table"


class ItemTokens(Choice):
    """``task.item_tokens``."""

    semantic = "semantic"
    id = "id"


class Embedding(Choice):
    """``task.embedding``: what the semantic ids cluster."""

    attributes = "attributes"
    cooccurrence = "cooccurrence"
    both = "both"


class SemanticIds(Choice):
    """``task.semantic_ids``."""

    kmeans = "kmeans"
    rqvae = "rqvae"


@dataclass
class NextItemConfig:
    """The ``task:`` block for ``name: next_item``.

    Attributes:
        path: sequences file (``user item1 item2 ...``) or interaction table.
        format: ``sequences`` or ``table``.
        user_column, item_column, time_column: table columns (``format: table``).
        sep: table delimiter ('' = comma, tab for .tsv/.dat); names: comma-separated header
            for headerless tables (MovieLens ``ratings.dat``).
        item_tokens: ``semantic`` (code levels, can be invalid) or ``id`` (one token per item).
        attributes: item -> attribute ids JSON (semantic ids from attributes); "" uses
            Beauty's file only for Beauty's interactions file, else co-occurrence semantic ids
            (see :mod:`advx_recsys.inputs`).
        embedding: what semantic ids cluster: ``attributes``, ``cooccurrence`` (training
            sequences only) or ``both``.
        semantic_ids: how the code levels are made from the item embedding: ``kmeans``
            (hierarchical k-means) or ``rqvae`` (TIGER's RQ-VAE, ``rqvae.py``).
        codebook: codes per level (k-means clusters per level, or RQ-VAE codebook sizes).
        svd_dim: dimensions of the item embedding (k-means input, RQ-VAE input).
        rqvae_hidden, rqvae_latent: RQ-VAE encoder hidden sizes and latent (codebook) dim.
        rqvae_epochs, rqvae_batch_size, rqvae_lr, rqvae_commitment: RQ-VAE training
            (Adam; loss = reconstruction + rqvae_commitment × commitment).
        history: items shown in the prompt (the most recent ones).
        max_history: keep each user's most recent this many interactions (0 = all).
        max_train_pairs: a fixed random subset of this many training pairs (0 = all).
        drop_short: skip users with fewer than 3 items instead of failing.
        max_users: keep a random subset of users (0 = all); the item catalogue stays whole.
        eval_users: evaluate on a random subset of users per split (0 = all).
        subset_seed: seed of both subsets (fixed, so runs with different seeds compare on
            the same users).
        topk: beam width and number of returned items at evaluation.
        eval_batch_size: prompts per beam-search call.
        constrained: beam search restricted to valid item codes (a prefix trie over the
            catalogue's token strings; hallucination 0 by construction). Needs a generator
            with :class:`advx.components.SupportsBeamSearch`.
        eval_unconstrained: with ``constrained``, also evaluate the unconstrained beam
            search (metrics ``{split}/free/…``; about 1.8× the evaluation time). An evaluation
            key (its name has ``eval``), so ``advx eval RUN task.eval_unconstrained=false``
            skips it when re-evaluating.
        report_unconstrained: the former name of ``eval_unconstrained`` (true sets it), kept so
            older recipes and run folders still load.
    """

    path: str = f"{BEAUTY}/Beauty.txt"
    format: TableFormat = TableFormat.sequences
    user_column: str = "user"
    item_column: str = "item"
    time_column: str = "timestamp"
    sep: str = ""
    names: str = ""
    item_tokens: ItemTokens = ItemTokens.semantic
    attributes: str = ""
    embedding: Embedding = Embedding.both
    semantic_ids: SemanticIds = SemanticIds.kmeans
    codebook: list[int] = field(default_factory=lambda: [32, 32, 32])
    svd_dim: int = 32
    rqvae_hidden: list[int] = field(default_factory=lambda: [256, 128])
    rqvae_latent: int = 32
    rqvae_epochs: int = 100
    rqvae_batch_size: int = 1024
    rqvae_lr: float = 1e-3
    rqvae_commitment: float = 0.25
    history: int = 10
    max_history: int = 0
    max_train_pairs: int = 0
    drop_short: bool = False
    max_users: int = 0
    eval_users: int = 0
    subset_seed: int = 0
    topk: int = 10
    eval_batch_size: int = 64
    constrained: bool = False
    eval_unconstrained: bool = False
    report_unconstrained: bool = False

    def __post_init__(self) -> None:
        if self.report_unconstrained:  # the former name
            self.eval_unconstrained, self.report_unconstrained = True, False


def ranking_metrics(
    ranked: Sequence[Sequence[str | None]], targets: Sequence[str], ks: Sequence[int] = (5, 10)
) -> dict[str, float]:
    """HR@k, NDCG@k (k = max of ks) and hallucination from ranked item lists.

    ``ranked[u]`` is user u's list of returned items, best first; None marks an output that
    maps to no item.
    """
    n = max(len(targets), 1)
    out: dict[str, float] = {}
    ranks = []
    for items, target in zip(ranked, targets, strict=True):
        ranks.append(items.index(target) if target in items else math.inf)
    for k in ks:
        out[f"hr@{k}"] = sum(r < k for r in ranks) / n
    k = max(ks)
    out[f"ndcg@{k}"] = sum(1.0 / math.log2(r + 2) for r in ranks if r < k) / n
    returned = sum(len(items) for items in ranked)
    out["hallucination"] = sum(i is None for items in ranked for i in items) / max(returned, 1)
    out["hallucination@1"] = sum(bool(items) and items[0] is None for items in ranked) / n
    return out


def _deal(size: int) -> list[int]:
    """Positions ``0 … size-1`` (users in prompt-length order) reordered so that each rank's
    contiguous share under :func:`advx.distributed.shard_map` holds every N-th of them:
    round ``j`` gives one position to each rank whose share (``shard_bounds``) has a ``j``-th
    slot, so the shares have shard_map's sizes and alike prompt lengths. The identity in a
    plain run."""
    n = world_size()
    sizes = [hi - lo for lo, hi in (shard_bounds(size, r) for r in range(n))]
    shares: list[list[int]] = [[] for _ in range(n)]
    position = iter(range(size))
    for j in range(max(sizes, default=0)):
        for r in range(n):
            if j < sizes[r]:
                shares[r].append(next(position))
    return [i for share in shares for i in share]


def top_k_texts(generator: Generator, prompts: Sequence[Prompt], k: int,
                allowed: Sequence[str] | None = None) -> list[list[str]]:
    """Beam search when the generator offers it, else the most likely distinct samples.

    ``allowed``: constrain the beam search to these response texts (the catalogue)."""
    if isinstance(generator, SupportsBeamSearch):  # an optional, declared capability
        if allowed is not None:
            rows = generator.beam_search(prompts, k, allowed=allowed)
        else:
            rows = generator.beam_search(prompts, k)
        return [[text for text, _ in row] for row in rows]
    if allowed is not None:
        raise ConfigError(
            f"task.constrained: true needs a generator with beam search "
            f"(SupportsBeamSearch); {type(generator).__name__} has none. Set "
            f"task.constrained: false."
        )
    rollout: Rollout = generator.sample(prompts, n=2 * k, temperature=1.0)
    scores = (rollout.logprobs * rollout.response_mask).sum(-1).tolist()
    out: list[list[str]] = [[] for _ in prompts]
    best: list[dict[str, float]] = [{} for _ in prompts]
    for row, (text, score) in enumerate(zip(rollout.texts, scores, strict=True)):
        group = int(rollout.group_ids[row])
        best[group][text] = max(score, best[group].get(text, -math.inf))
    for g, candidates in enumerate(best):
        out[g] = sorted(candidates, key=candidates.get, reverse=True)[:k]
    return out


class NextItemTask:
    """Leave-one-out next-item recommendation over token-sequence items."""

    def __init__(self, config: NextItemConfig, sequences: dict[str, list[str]],
                 codec: ItemCodec) -> None:
        self.config = config
        self.codec = codec
        self.items: list[str] = codec.items
        self.index: dict[str, int] = {item: i for i, item in enumerate(self.items)}
        self._valid_texts = codec.texts()  # one object: the generator caches its trie on it
        rng = np.random.default_rng(config.subset_seed)
        users = sorted(sequences)
        if config.max_users and config.max_users < len(users):
            users = sorted(rng.choice(users, size=config.max_users, replace=False).tolist())
        self.split = leave_one_out({u: sequences[u] for u in users}, config.drop_short)
        self.split = cap_train_pairs(self.split, config.max_train_pairs, config.subset_seed)
        self.popularity = popularity(sequences[u] for u in users)
        self._baselines: dict[str, float] | None = None
        self._warned: set[str] = set()
        self.eval_sets = {
            name: self._subset(examples, rng)
            for name, examples in (("valid", self.split.valid), ("test", self.split.test))
        }

    def _subset(self, examples: list[Example], rng: np.random.Generator) -> list[Example]:
        if self.config.eval_users and self.config.eval_users < len(examples):
            picked = sorted(rng.choice(len(examples), self.config.eval_users, replace=False))
            return [examples[i] for i in picked]
        return examples

    # ------------------------------------------------------------------ rendering
    def prompt(self, example: Example) -> Prompt:
        shown = example.history[-self.config.history:] if self.config.history else ()
        return Prompt(
            text=self.codec.render(shown),
            meta={
                "user": example.user,
                "history": example.history,
                "target": example.target,
                "target_text": self.codec.text_of(example.target),
                "split": example.split,
            },
        )

    def sample(self, example: Example, label: int | None = None) -> Sample:
        return Sample(text=self.codec.text_of(example.target), prompt=self.prompt(example),
                      label=label)

    def item_of(self, text: str) -> str | None:
        """The catalogue item a generated text names, or None (a hallucination)."""
        return self.codec.item_of(text)

    def eval_pairs(self, split: str, subset: bool = False) -> list[tuple[tuple[str, ...], str]]:
        """``(history, target)`` of every leave-one-out ``valid`` or ``test`` user (the
        ``eval_users`` subset when ``subset``); the ranker's model selection and report."""
        if split not in ("valid", "test"):
            raise ValueError(f"eval_pairs: split must be 'valid' or 'test', got {split!r}")
        full = self.split.valid if split == "valid" else self.split.test
        examples = self.eval_sets[split] if subset else full
        return [(e.history, e.target) for e in examples]

    # ------------------------------------------------------------------ Task protocol
    def generator_train(self) -> list[Sample]:
        return [self.sample(e) for e in self.split.train]

    def classifier_train(self) -> list[Sample]:
        """Logged training interactions (label 1): the ranker never sees valid/test targets."""
        return [self.sample(e, label=1) for e in self.split.train]

    def rl_prompts(self, batch_size: int, rng: np.random.Generator) -> list[Prompt]:
        if not self.split.train:
            raise DataError("next_item: no training pairs (every user has only 3 items?)")
        replace = batch_size > len(self.split.train)
        picked = rng.choice(len(self.split.train), size=batch_size, replace=replace)
        return [self.prompt(self.split.train[i]) for i in picked]

    def texts(self) -> list[str]:
        """Training histories and targets plus the item catalogue (every valid token); no
        user's validation or test interaction."""
        train = [self.prompt(e).text for e in self.split.train]
        train += [self.codec.text_of(e.target) for e in self.split.train]
        return train + [self.codec.text_of(i) for i in self.items]

    def evaluate(self, components: Components, stage: str) -> dict[str, float]:
        if components.generator is None:
            return {}
        metrics: dict[str, float] = {}
        modes: list[tuple[str, Sequence[str] | None]] = [("", None)]
        if self.config.constrained:
            modes = [("", self._valid_texts)]
            if self.config.eval_unconstrained:
                modes.append(("free/", None))
        for prefix, allowed in modes:
            started = time.perf_counter()
            for name, value in self._evaluate(components.generator, allowed).items():
                split, _, rest = name.partition("/")  # valid/hr@10 → valid/free/hr@10
                metrics[f"{split}/{prefix}{rest}" if split in self.eval_sets else name] = value
            metrics[f"eval/{prefix}seconds"] = time.perf_counter() - started
        if self._baselines is None:  # once per run: they do not depend on the generator
            self._baselines = popularity_baselines(self.eval_sets, self.popularity,
                                                   self.items, self.config.topk, self._ks())
        return {**metrics, **self._baselines}

    def _ks(self) -> list[int]:
        """The cut-offs reported: 5 and 10 where the beam returns that many."""
        return [k for k in (5, 10) if k <= self.config.topk] or [self.config.topk]

    def _by_prompt_length(self, examples: list[Example]) -> list[int]:
        """Indices of ``examples`` in order of shown history length (stable), so each
        beam-search call pads its prompts to a similar length. Random batches of all Beauty
        users are padded to the longest history (``history: 20`` → 81 tokens) while the mean
        is ~27 tokens, and padding costs as much as prompt tokens in the prefill."""
        cap = self.config.history
        return sorted(range(len(examples)),
                      key=lambda i: min(len(examples[i].history), cap) if cap else 0)

    def _ranked(self, generator: Generator, examples: Sequence[Example],
                allowed: Sequence[str] | None) -> list[list[str | None]]:
        """The top-k items of each example, in the examples' order, searched
        ``eval_batch_size`` at a time (the callers pass them by prompt length,
        :meth:`_by_prompt_length`, so each call pads little)."""
        ranked: list[list[str | None]] = []
        step = self.config.eval_batch_size
        for start in range(0, len(examples), step):
            batch = examples[start : start + step]
            for row in top_k_texts(generator, [self.prompt(e) for e in batch],
                                   self.config.topk, allowed):
                ranked.append([self.item_of(t) for t in row])
                if allowed is not None and None in ranked[-1]:
                    self._refuse_truncated(row)
        return ranked

    def _refuse_truncated(self, row: Sequence[str]) -> None:
        """A constrained search can only return catalogue items, unless the generator cannot
        write a whole code (its response limit cuts the trie's paths): then every evaluation
        would count hallucinations that are not the policy's. Stop with the fix."""
        bad = next(t for t in row if self.item_of(t) is None)
        need = max((len(t.split()) for t in self._valid_texts), default=0) + 1
        raise ConfigError(
            f"task.constrained: the constrained beam search returned {bad!r}, which is no "
            f"item: the generator cannot write whole item codes ({need - 1} tokens plus the "
            f"eos). Set generator.max_new_tokens={need} (or more).")

    def _evaluate(self, generator: Generator, allowed: Sequence[str] | None
                  ) -> dict[str, float]:
        """Rank metrics of each evaluation split. In a data-parallel run every rank searches
        a share of the users (:func:`advx.distributed.shard_map`) and all hold the whole
        split's rankings; the users are dealt to the shares by prompt length, round-robin, so
        each share costs about the same (and each share stays in length order). The rankings
        are put back in one order (by prompt length, as one process searches them) before the
        metrics, so the float sums and the bootstrap SEs (which resample users by position)
        do not depend on the process count."""
        metrics: dict[str, float] = {}
        ks = self._ks()
        for name, examples in self.eval_sets.items():
            by_length = [examples[i] for i in self._by_prompt_length(examples)]
            dealt = _deal(len(by_length))
            searched = shard_map(lambda part: self._ranked(generator, part, allowed),
                                 [by_length[i] for i in dealt])
            ranked: list[list[str | None]] = [[] for _ in by_length]
            for i, row in zip(dealt, searched, strict=True):
                ranked[i] = row
            targets = [e.target for e in by_length]
            for key, value in ranking_metrics(ranked, targets, ks).items():
                metrics[f"{name}/{key}"] = value
            metrics.update(ranking_uncertainty(name, ranked, targets, ks, self._warned))
        return metrics


def build_next_item(config: NextItemConfig, ctx: BuildContext) -> NextItemTask:
    """Factory: read the data, split it, and build the item codec."""
    if config.max_history < 0 or config.max_train_pairs < 0:
        raise ConfigError("task.max_history and task.max_train_pairs must be ≥ 0 (0 = no cap)")
    if config.format == TableFormat.sequences:
        sequences = read_sequences(Path(config.path))
    else:
        sequences = read_table(Path(config.path), config.user_column, config.item_column,
                               config.time_column, config.sep, config.names)
    sequences = cap_history(sequences, config.max_history)
    items = sorted({i for seq in sequences.values() for i in seq},
                   key=lambda x: (len(x), x))
    if config.item_tokens == ItemTokens.id:
        codec = ItemCodec.plain(items)
    else:
        if len(config.codebook) + 1 > 8:
            raise ConfigError("task.codebook: at most 7 levels")
        attributes = None
        file, embedding = resolve_attributes(config.path, config.attributes, config.embedding)
        if file is not None and embedding in ("attributes", "both"):
            attributes = load_attributes(file, items)
        train_seqs = [seq[:-2] for seq in sequences.values()]  # never the valid/test items
        rqvae = {
            "hidden": list(config.rqvae_hidden), "latent": config.rqvae_latent,
            "epochs": config.rqvae_epochs, "batch_size": config.rqvae_batch_size,
            "lr": config.rqvae_lr, "commitment": config.rqvae_commitment,
        }
        codes = semantic_codes(items, attributes, train_seqs, list(config.codebook),
                               embedding, config.svd_dim, config.subset_seed,
                               config.semantic_ids, rqvae)
        codec = ItemCodec.from_codes(codes)
    return NextItemTask(config, sequences, codec)

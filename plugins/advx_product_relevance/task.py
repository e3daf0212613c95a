"""Task ``product_relevance``: cold-start query generation for product search (ACL 2025).

Products are split into *warm* ones, whose judged real queries are training data, and
*cold-start* ones, of which only the metadata is known during training. The generator learns
(product fields, desired label) → query on warm products, writes synthetic queries for cold
products, and the relevance classifier is measured on the cold products' REAL queries, which no
training step ever sees (not the generator's SFT, not a classifier fit, not a tokenizer).

Prompt ``meta`` keys (what classifiers, rewards and optimizers may read):
    ``label`` (int, the desired / true class), ``label_name``, ``product_id``, ``cold`` (bool),
    ``synthetic`` (bool, on generated samples only) and every product field by its template
    name (``title``, ``description``, ...).
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from advx.components import BuildContext, Components
from advx.distributed import shard_map
from advx.errors import ConfigError, DataError
from advx.label_specific import most_label_specific
from advx.rollout import Prompt, Rollout, Sample
from advx.uncertainty import bootstrap_se, mean_se, two_class, with_uncertainty
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score

from advx_product_relevance.baselines import relevance_baselines, tokens
from advx_product_relevance.data import (
    PRESETS,
    Row,
    check_encoding,
    check_label_map,
    check_labels,
    demo_table,
    load_table,
    rows_from_table,
)

__all__ = ["ProductRelevanceConfig", "ProductRelevanceTask", "build_product_relevance"]

_LABEL_KEYS = ("label", "label_name")


@dataclass
class ProductRelevanceConfig:
    """The ``task:`` block (``name: product_relevance``).

    Attributes:
        preset: ``demo`` (synthetic catalog made by code), ``crowdflower``, ``esci``, or ""
            for any other table described by the keys below. A preset fills every key left
            empty here; ``columns``, ``fields`` and ``label_map`` are merged key by key.
        path: a file, a directory (with ``files``), a glob, or a hub dataset id.
        files: glob of data files inside a directory ``path`` (e.g. ``fold*.csv``).
        format: ``csv``, ``json`` (JSON lines) or ``parquet``; empty infers it from the suffix.
        encoding: text encoding of local CSV / JSON-lines files (``utf-8``; e.g. ``latin-1``).
        hub_split: the split to read when ``path`` is a hub id.
        columns: ``query``, ``label`` and ``product_id`` → column names (no ``product_id``:
            the first field, e.g. the title, identifies a product).
        fields: product metadata, template name → column name (``{title: product_title}``).
        label_map: raw label → class index, or null to drop rows with that label.
        label_threshold: instead of ``label_map``, for continuous relevance scores: a score
            ≥ this value is class 1, any other class 0 (e.g. ``2.5`` for 1–3 averages such as
            2.33, 2.67). Mutually exclusive with a recipe ``label_map`` (a preset's map is
            replaced); needs two ``label_names``.
        where: keep only rows whose column equals the value (e.g. ``{product_locale: us}``).
        label_names: class names by index, used in prompts (``{label_name}``).
        positive_label: the class PR-AUC, ROC-AUC and F1 are computed for.
        cold_fraction: fraction of products held out as cold-start.
        split_seed: seed of the warm/cold product split (fixed across run seeds by default,
            so seeds vary the models, not the data).
        max_products: keep a deterministic random subset of this many products (0: all).
        demo_products: catalog size of the ``demo`` preset.
        drop_empty_products: drop rows whose product has no text in any field (else an error).
        prompt_template: the generator's prompt; ``{label_name}``, ``{label}``,
            ``{product_id}`` and every field name may appear.
        max_field_chars: each field is cut to this many characters inside the prompt.
        augment_per_product: augment prompts per (cold product, label) pair each round.
        max_augment_products: cold products per augment round (0: all of them); a different
            slice each round.
        eval_generate: cold prompts the generator answers at every evaluation (distinct ratio,
            classifier loss on synthetic queries, examples written to the run directory).
        eval_temperature: sampling temperature for those evaluation samples (> 0).
        eval_candidates: each evaluation sample is the most label-specific of this many
            candidates, as ``loop.augment_candidates`` selects augment samples (set the two
            equal to measure what augmentation writes); 1: the generator's plain samples.
        sft_other_negatives: extra generator SFT pairs, as a fraction of the real warm pairs:
            (warm product, the negative class, a real query of ANOTHER warm product that shares
            no word with this product's fields). Judged data sets such as CrowdFlower hold
            near-miss negatives only (queries that share words with the title), so a generator
            trained on them alone writes the same title words whichever label it is asked for
            (label agreement at chance); these pairs teach it that an irrelevant query may
            be about something else. Needs two ``label_names``; 0 (default) adds none.
        fit_other_negatives: the same kind of pairs (another draw) added to the classifier's
            training data: a classifier fitted on near-miss negatives only calls an off-topic
            query relevant about a third of the time (C_0 on CrowdFlower), so it can neither
            learn from nor certify the generator's unambiguous negatives. 0 (default): the
            real pairs only, as in the paper.
        sft_title_queries: extra generator SFT pairs, as a fraction of the real warm pairs:
            (warm product, ``positive_label``, a crop of consecutive words of its first field
            — the title — as long as a real query drawn at random). A data set with few
            distinct queries (CrowdFlower: 261 for 10k pairs) teaches the generator a closed
            set, and for a product none of them fits it writes the nearest one, about
            something else; these pairs teach it that a relevant query may use the product's
            own words (pseudo-queries by cropping, as in Contriever, Izacard et al. 2022).
            0 (default) adds none. Measured on CrowdFlower: no gain in label agreement
            (docs/results/cold_start.md, "Title-crop positives").
    """

    preset: str = "demo"
    path: str = ""
    files: str = ""
    format: str = ""
    encoding: str = "utf-8"
    hub_split: str = "train"
    columns: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    label_map: dict[Any, Any] = field(default_factory=dict)
    label_threshold: float | None = None
    where: dict[str, Any] = field(default_factory=dict)
    label_names: list[str] = field(default_factory=lambda: ["irrelevant", "relevant"])
    positive_label: int = 1
    cold_fraction: float = 0.2
    split_seed: int = 0
    max_products: int = 0
    demo_products: int = 240
    drop_empty_products: bool = False
    prompt_template: str = "search query {label_name} to the product: {title}"
    max_field_chars: int = 200
    augment_per_product: int = 1
    max_augment_products: int = 0
    eval_generate: int = 32
    eval_temperature: float = 1.0
    eval_candidates: int = 1
    sft_other_negatives: float = 0.0
    fit_other_negatives: float = 0.0
    sft_title_queries: float = 0.0


def _resolved(config: ProductRelevanceConfig) -> dict[str, Any]:
    """The config with its preset's values filled in where the recipe left them empty."""
    if config.preset and config.preset not in PRESETS:
        raise ConfigError(f"task.preset {config.preset!r} is unknown; choose one of "
                          f"{sorted(PRESETS)} or \"\" with task.path and the mappings.")
    base = PRESETS.get(config.preset, {})
    out: dict[str, Any] = {}
    for key in ("path", "files", "format"):
        out[key] = getattr(config, key) or base.get(key, "")
    for key in ("columns", "fields", "label_map", "where"):
        out[key] = {**base.get(key, {}), **dict(getattr(config, key))}
    return out


def check_config(config: ProductRelevanceConfig) -> None:
    """Values a late library call would reject with a traceback, checked at build time."""
    if not config.eval_temperature > 0:
        raise ConfigError(f"task.eval_temperature must be > 0 (a sampling temperature), got "
                          f"{config.eval_temperature}. Fix: task.eval_temperature=1.0")
    for key in ("eval_generate", "max_products", "max_augment_products", "demo_products"):
        if getattr(config, key) < 0:
            raise ConfigError(f"task.{key} must be ≥ 0, got {getattr(config, key)}")
    if config.sft_title_queries < 0:
        raise ConfigError(f"task.sft_title_queries must be ≥ 0 (a fraction of the real warm "
                          f"pairs), got {config.sft_title_queries}")
    for key in ("sft_other_negatives", "fit_other_negatives"):
        value = getattr(config, key)
        if value < 0:
            raise ConfigError(f"task.{key} must be ≥ 0 (a fraction of the real warm pairs), "
                              f"got {value}")
        if value and len(config.label_names) != 2:
            raise ConfigError(f"task.{key} needs two classes (the negative one is the class "
                              f"that is not task.positive_label), but task.label_names has "
                              f"{len(config.label_names)} names. Fix: task.{key}=0")
    if config.eval_candidates < 1:
        raise ConfigError(f"task.eval_candidates must be ≥ 1 (1: plain samples), got "
                          f"{config.eval_candidates}")
    if config.augment_per_product < 1:
        raise ConfigError(f"task.augment_per_product must be ≥ 1, got "
                          f"{config.augment_per_product}")
    check_encoding(config.encoding)


def load_rows(config: ProductRelevanceConfig) -> list[Row]:
    check_config(config)
    spec = _resolved(config)
    threshold = config.label_threshold
    if threshold is not None:
        if config.label_map:
            raise ConfigError(
                f"task.label_threshold={threshold} and task.label_map={dict(config.label_map)} "
                f"both map labels: keep one (task.label_map={{}} or task.label_threshold=null)."
            )
        if len(config.label_names) != 2:
            raise ConfigError(f"task.label_threshold makes two classes (0 below, 1 at or above "
                              f"it), but task.label_names has {len(config.label_names)} names.")
    else:
        check_label_map(spec["label_map"])
    locate = None
    if spec["format"] == "demo":
        table, source = demo_table(config.demo_products), "demo catalog"
    else:
        table, locate = load_table(spec["path"], spec["files"], spec["format"],
                                   config.hub_split, config.encoding)
        source = spec["path"]
    rows = rows_from_table(table, spec["columns"], spec["fields"], spec["label_map"],
                           spec["where"], source, config.drop_empty_products, locate,
                           label_threshold=threshold)
    if not rows:
        raise DataError(f"{source}: no rows left after the label mapping and task.where.")
    check_labels(rows, len(config.label_names))
    return rows


def split_products(
    rows: Sequence[Row], cold_fraction: float, seed: int, max_products: int = 0
) -> tuple[list[Row], list[Row]]:
    """(warm rows, cold rows): products, not rows, are shuffled and split, so every judged
    query of a cold product is held out together."""
    products = sorted({r.product_id for r in rows})
    rng = np.random.default_rng(seed)
    if max_products and max_products < len(products):
        products = sorted(rng.choice(products, size=max_products, replace=False).tolist())
    n_cold = round(cold_fraction * len(products))
    if n_cold < 1 or n_cold >= len(products):
        raise DataError(
            f"empty {'cold-start' if n_cold < 1 else 'warm'} split: task.cold_fraction="
            f"{cold_fraction} of {len(products)} products gives {n_cold} cold products. "
            f"Choose a cold_fraction strictly between {1 / len(products):.4f} and "
            f"{1 - 1 / len(products):.4f}."
        )
    cold = set(rng.permutation(products)[:n_cold].tolist())
    keep = set(products)
    warm_rows = [r for r in rows if r.product_id in keep and r.product_id not in cold]
    cold_rows = [r for r in rows if r.product_id in cold]
    return warm_rows, cold_rows


def other_product_pairs(rows: Sequence[Row], products: Mapping[str, Mapping[str, str]],
                        wanted: int, rng: np.random.Generator) -> list[tuple[str, Row]]:
    """Up to ``wanted`` (product id, row) pairs where the row's query belongs to another
    product of ``rows`` and shares no word with the product's fields: unambiguous negatives.
    Rejection sampling (20 draws per pair at most); disjoint pairs are the common case."""
    ids = sorted({r.product_id for r in rows})
    words = {p: set(tokens(" ".join(products[p].values()))) for p in ids}
    query_words = [set(tokens(r.query)) for r in rows]  # once, not once per draw
    out: list[tuple[str, Row]] = []
    for _ in range(20 * wanted):
        if len(out) == wanted:
            break
        product = ids[rng.integers(len(ids))]
        i = rng.integers(len(rows))
        if rows[i].product_id != product and not words[product] & query_words[i]:
            out.append((product, rows[i]))
    return out


def title_crops(rows: Sequence[Row], products: Mapping[str, Mapping[str, str]],
                wanted: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """``wanted`` (product id, pseudo-query) pairs over the products of ``rows``: a run of
    consecutive words of the product's first field, its length that of a real query of
    ``rows`` drawn at random (capped by the field's length), so the crops are as long as the
    data's queries. Products whose first field has no word are never drawn."""
    titles = {p: tokens(next(iter(products[p].values()), ""))
              for p in sorted({r.product_id for r in rows})}
    ids = [p for p, words in titles.items() if words]
    lengths = [n for n in (len(tokens(r.query)) for r in rows) if n]
    if not ids or not lengths:
        return []
    out: list[tuple[str, str]] = []
    for _ in range(wanted):
        product = ids[rng.integers(len(ids))]
        words = titles[product]
        n = min(lengths[rng.integers(len(lengths))], len(words))
        start = rng.integers(len(words) - n + 1)
        out.append((product, " ".join(words[start:start + n])))
    return out


class ProductRelevanceTask:
    """Warm/cold product split, prompts, synthetic samples and cold-start evaluation."""

    def __init__(self, config: ProductRelevanceConfig, rows: Sequence[Row],
                 run_dir: Path | None = None) -> None:
        self.config = config
        self.run_dir = run_dir
        self.label_names = list(config.label_names)
        if not 0 <= config.positive_label < len(self.label_names):
            raise ConfigError(f"task.positive_label={config.positive_label} is not a class "
                              f"index of task.label_names={self.label_names}.")
        self.warm_rows, self.cold_rows = split_products(
            rows, config.cold_fraction, config.split_seed, config.max_products)
        self.products: dict[str, dict[str, str]] = {}
        for row in [*self.warm_rows, *self.cold_rows]:
            self.products.setdefault(row.product_id, dict(row.fields))
        self.cold_ids = sorted({r.product_id for r in self.cold_rows})
        self.warm_ids = sorted({r.product_id for r in self.warm_rows})
        cold_labels = {r.label for r in self.cold_rows}
        if len(cold_labels) < 2:
            raise DataError(
                f"the cold-start split ({len(self.cold_ids)} products, {len(self.cold_rows)} "
                f"queries) has only label(s) {sorted(cold_labels)}: PR-AUC/ROC-AUC need both "
                f"classes. Raise task.cold_fraction or change task.split_seed."
            )
        self._check_template()
        self._warm = [self._real_sample(r, cold=False) for r in self.warm_rows]
        self._cold_eval = [self._real_sample(r, cold=True) for r in self.cold_rows]
        self._eval_prompts = self._fixed_eval_prompts()
        self._sft_negatives = self._other_product_negatives("sft_other_negatives", 2)
        self._fit_negatives = self._other_product_negatives("fit_other_negatives", 3)
        self._title_queries = self._title_query_positives()
        self._baselines: dict[str, float] | None = None
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ prompts and samples

    def _meta(self, product_id: str, label: int, cold: bool) -> dict[str, Any]:
        return {**self.products[product_id], "product_id": product_id, "label": label,
                "label_name": self.label_names[label], "cold": cold}

    def render(self, meta: dict[str, Any]) -> str:
        cut = self.config.max_field_chars
        values = {k: (v[:cut] if isinstance(v, str) else v) for k, v in meta.items()}
        return self.config.prompt_template.format_map(values)

    def prompt(self, product_id: str, label: int) -> Prompt:
        meta = self._meta(product_id, label, cold=product_id not in self._warm_set)
        return Prompt(text=self.render(meta), meta=meta)

    def requested_label(self, prompt: Prompt) -> int:
        """The label a prompt of this task asks for (``RequestsLabels``)."""
        return int(prompt.meta["label"])

    def relabel(self, prompt: Prompt, label: int) -> Prompt:
        """The same product's prompt asking for ``label`` (``RequestsLabels``)."""
        meta = {**prompt.meta, "label": label, "label_name": self.label_names[label]}
        return Prompt(text=self.render(meta), meta=meta)

    # ------------------------------------------------------------------ prompts for use

    def cold_prompts(self) -> list[Prompt]:
        """Every cold product × label: ``advx generate RUN --split cold``."""
        return [self.prompt(p, y) for p in self.cold_ids for y in range(len(self.label_names))]

    def prompts_from_records(self, records: Sequence[Mapping[str, Any]],
                             source: str = "records") -> list[Prompt]:
        """Prompts for products given as records of their fields (``advx generate
        --prompts new_products.csv``), rendered with ``task.prompt_template`` as in training.

        A record holds the template's product fields (``title``, ...), optionally a
        ``product_id`` and a ``label`` (a name of ``task.label_names`` or its index); without
        a label, one prompt per label. Products need not be in the task's data.
        """
        used = {name for _, name, _, _ in string.Formatter().parse(self.config.prompt_template)
                if name} - {"label", "label_name", "product_id", "cold"}
        prompts: list[Prompt] = []
        for i, record in enumerate(records, start=1):
            missing = sorted(k for k in used if k not in record)
            if missing:
                raise DataError(f"{source} record {i} has no field {missing[0]!r}; "
                                f"task.prompt_template needs {sorted(used)}")
            raw = record.get("label")
            if raw in (None, ""):
                labels = list(range(len(self.label_names)))
            elif str(raw) in self.label_names:
                labels = [self.label_names.index(str(raw))]
            elif str(raw).isdigit() and int(raw) < len(self.label_names):
                labels = [int(raw)]
            else:
                raise DataError(f"{source} record {i}: label {raw!r} is neither a name of "
                                f"task.label_names {self.label_names} nor its index")
            fields = {k: ("" if v is None else str(v)) for k, v in record.items()
                      if k not in ("label", "label_name", "product_id")}
            product_id = str(record.get("product_id") or f"record-{i}")
            for y in labels:
                meta = {**fields, "product_id": product_id, "label": y,
                        "label_name": self.label_names[y], "cold": True}
                prompts.append(Prompt(text=self.render(meta), meta=meta))
        return prompts

    def _check_template(self) -> None:
        self._warm_set = set(self.warm_ids)
        meta = self._meta(self.warm_ids[0], 0, cold=False)
        try:
            self.render(meta)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"task.prompt_template {self.config.prompt_template!r} uses {exc}, which is "
                f"not a field; available: {sorted(meta)}."
            ) from exc

    def _real_sample(self, row: Row, cold: bool) -> Sample:
        return Sample(text=row.query, prompt=self.prompt(row.product_id, row.label),
                      label=row.label)

    def _fixed_eval_prompts(self) -> list[Prompt]:
        rng = np.random.default_rng(self.config.split_seed + 1)
        pairs = [(p, y) for p in self.cold_ids for y in range(len(self.label_names))]
        picked = rng.permutation(len(pairs))[: self.config.eval_generate]
        return [self.prompt(*pairs[i]) for i in sorted(picked)]

    # ------------------------------------------------------------------ the Task protocol

    def _other_product_negatives(self, key: str, seed_offset: int) -> list[Sample]:
        """``task.<key>`` × |warm pairs| unambiguous negatives, drawn once from
        ``task.split_seed``; warm data only, so no cold query leaks."""
        fraction = getattr(self.config, key)
        wanted = round(fraction * len(self._warm))
        if not wanted:
            return []
        pairs = other_product_pairs(self.warm_rows, self.products, wanted,
                                    np.random.default_rng(self.config.split_seed + seed_offset))
        if len(pairs) < wanted:
            raise DataError(
                f"task.{key}={fraction}: found only {len(pairs)} of {wanted} (warm product, "
                f"query of another product) pairs sharing no word; the products' fields and "
                f"queries overlap too much. Lower task.{key}.")
        return self.negative_samples(pairs)

    def _title_query_positives(self) -> list[Sample]:
        """``task.sft_title_queries`` × |warm pairs| (warm product, positive class, title
        crop) samples, drawn once from ``task.split_seed``; warm products only."""
        fraction = self.config.sft_title_queries
        wanted = round(fraction * len(self._warm))
        if not wanted:
            return []
        crops = title_crops(self.warm_rows, self.products, wanted,
                            np.random.default_rng(self.config.split_seed + 4))
        if not crops:
            first = next(iter(self.products[self.warm_ids[0]]), "")
            raise DataError(f"task.sft_title_queries={fraction}: no warm product has a word "
                            f"in its first field ({first!r}), or no warm query has one. Put "
                            f"the title first in task.fields, or set task.sft_title_queries=0.")
        return self.positive_samples(crops)

    def positive_samples(self, pairs: Sequence[tuple[str, str]]) -> list[Sample]:
        """(product, query text) pairs as samples of ``task.positive_label``."""
        positive = self.config.positive_label
        return [Sample(text=query, prompt=self.prompt(product, positive), label=positive)
                for product, query in pairs]

    def negative_samples(self, pairs: Sequence[tuple[str, Row]]) -> list[Sample]:
        """(product, another product's query row) pairs as samples of the negative class."""
        negative = 1 - self.config.positive_label
        return [Sample(text=row.query, prompt=self.prompt(product, negative), label=negative)
                for product, row in pairs]

    def generator_train(self) -> list[Sample]:
        """SFT pairs (warm product fields + true label → real query), plus the
        ``task.sft_other_negatives`` and ``task.sft_title_queries`` pairs. No cold product."""
        return [*self._warm, *self._sft_negatives, *self._title_queries]

    def classifier_train(self) -> list[Sample]:
        """Warm products' real (query, label) samples, plus the ``task.fit_other_negatives``
        pairs. No cold product."""
        return [*self._warm, *self._fit_negatives]

    def cold_eval(self) -> list[Sample]:
        """The cold-start products' real queries: evaluation only."""
        return list(self._cold_eval)

    def augment_prompts(self, round: int) -> list[Prompt]:
        """Cold products × labels × ``augment_per_product`` (a rotating slice of
        ``max_augment_products`` cold products when set)."""
        ids = self.cold_ids
        cap = self.config.max_augment_products
        if cap and cap < len(ids):
            start = ((round - 1) * cap) % len(ids)
            ids = (ids + ids)[start:start + cap]
        return [self.prompt(p, y) for p in ids for y in range(len(self.label_names))
                for _ in range(self.config.augment_per_product)]

    def synthetic_samples(self, rollout: Rollout) -> list[Sample]:
        """(generated query, cold product, desired label); empty generations are dropped."""
        out = []
        for text, prompt in zip(rollout.texts, rollout.prompts, strict=True):
            if text.strip():
                meta = {**prompt.meta, "synthetic": True}
                out.append(Sample(text=text.strip(), prompt=Prompt(prompt.text, meta),
                                  label=int(meta["label"])))
        return out

    def rl_prompts(self, batch_size: int, rng: np.random.Generator) -> list[Prompt]:
        """``batch_size`` (cold product, label) pairs drawn uniformly."""
        products = rng.integers(len(self.cold_ids), size=batch_size)
        labels = rng.integers(len(self.label_names), size=batch_size)
        return [self.prompt(self.cold_ids[p], int(y)) for p, y in zip(products, labels,
                                                                          strict=True)]

    def texts(self) -> list[str]:
        """Tokenizer texts: warm queries, every product's fields and every rendered prompt
        (cold metadata is known at training time), never a cold product's query."""
        out: list[str] = [r.query for r in self.warm_rows]
        for product_id, fields in self.products.items():
            out.extend(v for v in fields.values() if v)
            out.extend(self.prompt(product_id, y).text for y in range(len(self.label_names)))
        return list(dict.fromkeys(out))

    def evaluate(self, components: Components, stage: str) -> dict[str, float]:
        """Classifier on cold products' real queries (``cold/*``) and generator statistics on
        a fixed set of cold prompts (``gen/*``), beside the no-training baselines on the same
        cold rows (``baseline/*``, computed once per run). Each metric has a bootstrap
        ``_se`` (and ``_resolvable``, see :mod:`advx.uncertainty`)."""
        metrics: dict[str, float] = dict(self.baselines())
        classifier = components.classifier
        if classifier is not None:
            metrics.update(self._classifier_metrics(classifier))
        if components.generator is not None and self._eval_prompts:
            metrics.update(self._generator_metrics(components, stage))
        return metrics

    # ------------------------------------------------------------------ evaluation

    def baselines(self) -> dict[str, float]:
        """``baseline/{chance,word_overlap,bm25}/...`` on the cold rows (two classes: of the
        positive class; more classes: of the positive class against the rest), cached: they
        do not depend on the generator or the classifier."""
        if self._baselines is None:
            rows = self.cold_rows
            truth = [int(r.label == self.config.positive_label) for r in rows]
            self._baselines = relevance_baselines([r.query for r in rows],
                                                  [r.product_id for r in rows], truth,
                                                  self.products)
        return self._baselines

    def _classifier_metrics(self, classifier: Any) -> dict[str, float]:
        samples = self._cold_eval
        # data-parallel: each rank scores its share of the split, every rank gets all of it
        probs = shard_map(classifier.predict_proba, samples).float().cpu().numpy()
        y = np.array([s.label for s in samples])
        pred = probs.argmax(1)
        pos = self.config.positive_label
        if probs.shape[1] == 2:
            score, truth = probs[:, pos], (y == pos).astype(int)
            pr_auc = average_precision_score(truth, score)
            roc_auc = roc_auc_score(truth, score)
            f1 = f1_score(y, pred, pos_label=pos, average="binary")
            ses = {"cold/pr_auc": bootstrap_se(two_class(average_precision_score), truth, score),
                   "cold/roc_auc": bootstrap_se(two_class(roc_auc_score), truth, score),
                   "cold/f1": bootstrap_se(_binary_f1, truth, (pred == pos).astype(int))}
        else:  # one-vs-rest macro averages over classes present
            onehot = np.eye(probs.shape[1])[y]
            present = onehot.sum(0) > 0
            pr_auc = average_precision_score(onehot[:, present], probs[:, present],
                                             average="macro")
            roc_auc = roc_auc_score(onehot[:, present], probs[:, present], average="macro")
            f1 = f1_score(y, pred, average="macro")
            ses = {}
        losses = shard_map(classifier.loss, samples).detach().float().cpu().numpy()
        ses["cold/accuracy"] = mean_se(pred == y)
        ses["cold/cls_loss"] = mean_se(losses)
        metrics = {
            "cold/pr_auc": float(pr_auc),
            "cold/roc_auc": float(roc_auc),
            "cold/f1": float(f1),
            "cold/accuracy": float(accuracy_score(y, pred)),
            "cold/cls_loss": float(losses.mean()),
            "cold/positive_rate": float((y == pos).mean()),
            "cold/n": float(len(samples)),
        }
        return with_uncertainty(metrics, ses, warn_keys=("cold/pr_auc",), warned=self._warned)

    def _generator_metrics(self, components: Components, stage: str) -> dict[str, float]:
        k = self.config.eval_candidates
        with torch.no_grad():
            rollout = components.generator.sample(self._eval_prompts, n=k,
                                                  temperature=self.config.eval_temperature)
        if k > 1:
            rollout, _ = most_label_specific(components.generator, self, rollout, k)
        texts = [t.strip() for t in rollout.texts]
        metrics = {
            "gen/distinct_ratio": len(set(texts)) / max(len(texts), 1),
            "gen/mean_words": float(np.mean([len(t.split()) for t in texts])),
            "gen/empty_rate": float(np.mean([not t for t in texts])),
        }
        synthetic = self.synthetic_samples(rollout)
        if components.classifier is not None and synthetic:
            # the evaluation rollout is the same on every rank: score it sharded
            losses = shard_map(components.classifier.loss, synthetic).float().cpu()
            probs = shard_map(components.classifier.predict_proba, synthetic).float().cpu()
            agree = probs.argmax(1).numpy() == np.array([s.label for s in synthetic])
            metrics["gen/cls_loss"] = float(losses.mean())
            metrics["gen/cls_loss_se"] = mean_se(losses.detach().numpy())
            metrics["gen/label_agreement"] = float(agree.mean())
            metrics["gen/label_agreement_se"] = mean_se(agree)
        self._write_examples(stage, rollout, texts)
        if components.classifier is not None:  # agreement under the frozen C_0 (agreement.py)
            from advx_product_relevance.agreement import c0_agreement
            metrics.update(c0_agreement(self, stage, components.classifier, synthetic))
        return metrics

    def _write_examples(self, stage: str, rollout: Rollout, texts: list[str]) -> None:
        if self.run_dir is None:
            return
        out = Path(self.run_dir) / "cold_start" / f"{stage}.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w") as f:
            for prompt, text in zip(rollout.prompts, texts, strict=True):
                f.write(json.dumps({"product_id": prompt.meta["product_id"],
                                    "label": prompt.meta["label_name"],
                                    "title": prompt.meta.get("title", ""),
                                    "query": text}) + "\n")


def _binary_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """F1 of the positive class = 2TP / (2TP + FP + FN): sklearn's f1_score, without its
    per-call validation (200 calls per evaluation for the SE)."""
    tp = float(np.sum(truth & predicted))
    wrong = float(np.sum(truth != predicted))
    return 2 * tp / (2 * tp + wrong) if tp or wrong else 0.0


def build_product_relevance(config: ProductRelevanceConfig,
                            ctx: BuildContext) -> ProductRelevanceTask:
    return ProductRelevanceTask(config, load_rows(config), run_dir=ctx.run_dir)

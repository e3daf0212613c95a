"""What a user's own recommendation data needs: which item-attributes file (if any) to use,
and caps for long-history datasets.

* Item attributes: ``task.attributes: ""`` (the default) uses the Amazon Beauty attributes
  file only when the interactions file IS the Beauty file (``Beauty.txt`` with
  ``Beauty_item2attributes.json`` beside it); any other dataset without an attributes file
  gets semantic ids from item co-occurrence in the training sequences alone. Beauty's
  attributes file named explicitly for another interactions file is refused: item ids that
  merely overlap Beauty's (1, 2, 3, …) would silently get Beauty's products' attributes.
* ``task.max_history``: keep each user's most recent this many interactions (0 = all),
  before the leave-one-out split, so a user with 2,000 ratings gives at most
  ``max_history - 3`` training pairs with histories at most that long.
* ``task.max_train_pairs``: a fixed random subset (``subset_seed``) of this many training
  pairs (0 = all); validation and test users are untouched.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from advx.errors import ConfigError

from advx_recsys.data import Split

__all__ = ["BEAUTY_ATTRIBUTES", "BEAUTY_SEQUENCES", "cap_history", "cap_train_pairs",
           "resolve_attributes"]

log = logging.getLogger("advx")

BEAUTY_SEQUENCES = "Beauty.txt"
BEAUTY_ATTRIBUTES = "Beauty_item2attributes.json"


def resolve_attributes(path: str, attributes: str, embedding: str) -> tuple[Path | None, str]:
    """(attributes file or None, the embedding to build) for interactions file ``path``."""
    interactions = Path(path)
    if attributes:
        chosen = Path(attributes)
        if chosen.name == BEAUTY_ATTRIBUTES and interactions.name != BEAUTY_SEQUENCES:
            raise ConfigError(
                f"task.attributes={attributes!r} is Amazon Beauty's attributes file, but the "
                f"interactions file {path!r} is not Beauty's {BEAUTY_SEQUENCES}: item ids that "
                f"merely overlap would get Beauty's attributes. Give this dataset's own "
                f"attributes file, or task.attributes='' (co-occurrence semantic ids)."
            )
        return chosen, embedding
    if embedding == "cooccurrence":
        return None, embedding
    beside = interactions.parent / BEAUTY_ATTRIBUTES
    if interactions.name == BEAUTY_SEQUENCES and beside.is_file():
        return beside, embedding
    if embedding == "attributes":
        raise ConfigError(
            "task.embedding=attributes needs an item-attributes file: set task.attributes "
            "(item id -> [attribute ids] JSON) or task.embedding=cooccurrence."
        )
    log.info("next_item: no task.attributes for %s: semantic ids from item co-occurrence",
             path)
    return None, "cooccurrence"


def cap_history(sequences: dict[str, list[str]], max_history: int) -> dict[str, list[str]]:
    """Each user's most recent ``max_history`` items (0 = unchanged)."""
    if max_history < 0:
        raise ConfigError(f"task.max_history must be ≥ 0 (0 = no cap), got {max_history}")
    if max_history and max_history < 3:
        raise ConfigError(f"task.max_history={max_history} leaves no training item; leave-"
                          f"one-out needs ≥ 3 items a user (0 = no cap).")
    if not max_history:
        return sequences
    return {user: items[-max_history:] for user, items in sequences.items()}


def cap_train_pairs(split: Split, max_train_pairs: int, seed: int) -> Split:
    """A fixed random subset of ``max_train_pairs`` training pairs, in their original order."""
    if max_train_pairs < 0:
        raise ConfigError(f"task.max_train_pairs must be ≥ 0 (0 = no cap), got {max_train_pairs}")
    if not max_train_pairs or max_train_pairs >= len(split.train):
        return split
    picked = np.random.default_rng(seed).choice(len(split.train), max_train_pairs, replace=False)
    return Split([split.train[i] for i in sorted(picked)], split.valid, split.test)

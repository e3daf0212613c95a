"""String choices of config keys, as Enums: the one mechanism that validates them.

A config dataclass field typed with a :class:`Choice` subclass is checked by the recipe
validator when the recipe is read (so ``advx run`` and a sweep's pre-check both report
``key: 'x' is not one of a, b``), and a plugin needs no hand-written ``if value not in``.
Members compare and print as their plain value (``mode == "replace"``, ``f"{mode}"``), and
recipe.yaml stores the value.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["Choice"]


class Choice(str, Enum):
    """Base of every string choice; subclass it with one member per allowed value."""

    def __str__(self) -> str:
        return str(self.value)

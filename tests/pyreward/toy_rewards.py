"""Reward functions with TRL's signature, for the tests (imported by module and by file)."""

from __future__ import annotations

from typing import Any

SEEN: list[dict[str, Any]] = []


def frac_a(prompts, completions, **kwargs):
    """Share of ``a`` tokens in each completion."""
    SEEN.append({"prompts": list(prompts), "completions": list(completions), **kwargs})
    return [c.split().count("a") / max(len(c.split()), 1) for c in completions]


def n_tokens(prompts, completions, completion_ids, **kwargs):
    return [float(len(ids)) for ids in completion_ids]


def label_bonus(prompts, completions, label, **kwargs):
    return [1.0 if y == 1 else 0.0 for y in label]


def too_few(prompts, completions, **kwargs):
    return [1.0] * (len(completions) - 1)


def with_none(prompts, completions, **kwargs):
    return [None] * len(completions)


def with_nan(prompts, completions, **kwargs):
    return [float("nan")] * len(completions)


def a_string(prompts, completions, **kwargs):
    return "1.0"


NOT_CALLABLE = 3

"""``gen/label_agreement_c0``: label agreement of generated queries under a FROZEN judge.

Definition. For the task's fixed evaluation prompts (cold product p, requested label y), the
generator writes one query q (sampled at ``task.eval_temperature``). The agreement is the
fraction of these (p, y, q) whose judge-predicted label ``argmax_c P_judge(c | q, p)`` equals y.

* ``gen/label_agreement`` (computed in ``task.py``) judges with the *current* classifier C_N.
  From round 1 on, C_N has been refit on the generator's own synthetic queries with the
  requested labels, so it partly learns to agree with the generator: an optimistic measure.
* ``gen/label_agreement_c0`` (here) judges with C_0, the classifier as it was at the first
  evaluation of the run (stage ``pretrain``: trained on real warm-product queries only, never on
  synthetic data), kept frozen for the whole run. Comparable across rounds and conditions of
  one seed (they share C_0), and not inflated by augmentation. A resumed run whose first
  evaluation is not ``pretrain`` has no C_0 snapshot and does not log it.

Why a weight snapshot and not a copy of the classifier: the classifier object holds a
tokenizer, an optimizer and RNG streams that need not survive ``copy.deepcopy``; its
``state_dict``/``load_state_dict`` are part of the contract (checkpointing), so the judge is
the same object with C_0's weights loaded for the duration of one ``predict_proba``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from advx.rollout import Sample

__all__ = ["FrozenJudge", "c0_agreement"]

_ATTR = "_advx_c0_judge"


class FrozenJudge:
    """C_0's weights, taken at the ``pretrain`` evaluation, and agreement under them."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    @classmethod
    def snapshot(cls, classifier: Any) -> FrozenJudge:
        return cls(_clone(classifier.state_dict()))

    def predict(self, classifier: Any, samples: Sequence[Sample]) -> np.ndarray:
        """Labels C_0 predicts for ``samples`` (the classifier's own weights are restored)."""
        current = _clone(classifier.state_dict())
        classifier.load_state_dict(self.state)
        try:
            with torch.no_grad():
                return classifier.predict_proba(samples).float().argmax(1).cpu().numpy()
        finally:
            classifier.load_state_dict(current)


def c0_agreement(task: Any, stage: str, classifier: Any,
                 synthetic: Sequence[Sample]) -> dict[str, float]:
    """``{"gen/label_agreement_c0": ..., "gen/label_agreement_c0_<label name>": ...}`` for
    ``synthetic`` (one query per evaluation prompt, ``Sample.label`` = the requested label),
    overall and per requested label; the judge is stored on ``task`` at ``pretrain``."""
    if stage == "pretrain":
        setattr(task, _ATTR, FrozenJudge.snapshot(classifier))
    judge = getattr(task, _ATTR, None)
    if judge is None or not synthetic:
        return {}
    predicted = judge.predict(classifier, synthetic)
    requested = np.array([s.label for s in synthetic])
    agree = predicted == requested
    out = {"gen/label_agreement_c0": float(agree.mean())}
    for label, name in enumerate(task.label_names):  # a generator may follow one label only
        if (requested == label).any():
            out[f"gen/label_agreement_c0_{name}"] = float(agree[requested == label].mean())
    return out


def _clone(state: Any) -> Any:
    """A deep copy of a (nested) state dict's tensors; other values as they are."""
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        return {k: _clone(v) for k, v in state.items()}
    return state

"""advx built-in plugin: classifier ``encoder`` (T5 encoder + head, or any transformers
sequence classifier), the relevance classifier of the cold-start recipes.

See :mod:`advx_encoder_classifier.classifier` and ``docs/recipes/ppo_cls_loss.md``.
"""

from __future__ import annotations

import advx

from advx_encoder_classifier.classifier import (
    EncoderClassifier,
    EncoderClassifierConfig,
    build_encoder_classifier,
)

__all__ = ["EncoderClassifier", "EncoderClassifierConfig", "build_encoder_classifier"]


@advx.hookimpl
def advx_register_classifiers(register: advx.hookspecs.Register) -> None:
    register("encoder", build_encoder_classifier, EncoderClassifierConfig)

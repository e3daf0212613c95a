"""advx built-in plugin: task ``product_relevance`` (cold-start product search relevance).

See :mod:`advx_product_relevance.task` for the split, the prompts and the metrics, and
``docs/recipes/ppo_cls_loss.md`` for every recipe key.
"""

from __future__ import annotations

import advx

from advx_product_relevance.task import (
    ProductRelevanceConfig,
    ProductRelevanceTask,
    build_product_relevance,
)

__all__ = ["ProductRelevanceConfig", "ProductRelevanceTask", "build_product_relevance"]


@advx.hookimpl
def advx_register_tasks(register: advx.hookspecs.Register) -> None:
    register("product_relevance", build_product_relevance, ProductRelevanceConfig)

"""One rank of the sharded evaluation / classifier-fit check (launched by
test_sharded_eval.py through torchrun, or run plainly for the one-process reference).

Builds the ``product_relevance`` demo task and a tiny ``encoder`` classifier (dropout 0, so a
sharded fit does the same arithmetic as one process), evaluates the initial weights (a fixed
checkpoint: the same seed on every rank), fits once and evaluates again; writes
``OUT/rank-<r>.json`` with the metrics, the fit's metrics and the weights after the fit."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from advx.components import BuildContext, Components
from advx.distributed import init, rank, world_size
from advx_encoder_classifier.classifier import EncoderClassifierConfig, build_encoder_classifier
from advx_product_relevance import ProductRelevanceConfig, build_product_relevance


def main(out: Path) -> None:
    init()
    torch.manual_seed(0)
    ctx = BuildContext(run_dir=out / f"run-{world_size()}-{rank()}", seed=0, device="cpu")
    task = build_product_relevance(ProductRelevanceConfig(preset="demo"), ctx)
    ctx.task = task
    classifier = build_encoder_classifier(EncoderClassifierConfig(
        epochs=1, dropout=0.0, d_model=32, num_layers=1, num_heads=2, d_ff=64, max_length=32,
        vocab_size=500, batch_size=32, eval_batch_size=50), ctx)
    components = Components(task=task, classifier=classifier)
    fixed = task.evaluate(components, "fixed")
    train = task.classifier_train()
    fitted = classifier.fit(train[:301])  # 301: uneven shares and an uneven last minibatch
    after = task.evaluate(components, "after")
    flat = torch.cat([p.detach().reshape(-1) for p in classifier.net.parameters()]).tolist()
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank-{rank()}-of-{world_size()}.json").write_text(json.dumps(
        {"world_size": world_size(), "fixed": fixed, "fit": fitted, "after": after,
         "params": flat, "sharded": classifier._sharded}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))

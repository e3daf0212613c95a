"""How long semantic ids and beam-search evaluation take on a dataset (a measurement script).

``python -m advx_recsys.timing --path Beauty.txt --attributes Beauty_item2attributes.json
--users 256`` builds the task (k-means and, with ``--rqvae``, RQ-VAE ids: time, collisions),
a ``tiny`` causal policy of the recipes' size (untrained: beam-search cost does not depend on
the weights), times constrained and unconstrained beam search on ``--users`` validation
users and extrapolates linearly to every user of both evaluation splits.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from advx.components import BuildContext


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", required=True)
    parser.add_argument("--attributes", required=True)
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--rqvae", action="store_true")
    parser.add_argument("--rqvae-epochs", type=int, default=50)
    parser.add_argument("--codebook", type=int, nargs="+", default=[32, 32, 32])
    args = parser.parse_args()

    from advx_causal import CausalConfig, build_causal

    from advx_recsys.task import NextItemConfig, build_next_item, top_k_texts

    out: dict[str, object] = {}
    methods = ["kmeans", "rqvae"] if args.rqvae else ["kmeans"]
    task = None
    for method in methods:
        started = time.perf_counter()
        cfg = NextItemConfig(path=args.path, attributes=args.attributes, history=5,
                             semantic_ids=method, codebook=args.codebook,
                             rqvae_epochs=args.rqvae_epochs)
        built = build_next_item(cfg, BuildContext(Path("."), 0, "cpu"))
        prefixes = Counter(
            tuple(built.codec.text_of(i).split()[:-1]) for i in built.items
        )
        out[method] = {
            "seconds": time.perf_counter() - started,
            "distinct_prefixes": len(prefixes),
            "items": len(built.items),
            "max_items_per_prefix": max(prefixes.values()),
        }
        print(method, out[method], flush=True)
        task = task or built
    assert task is not None
    generator = build_causal(
        CausalConfig(d_model=64, num_layers=2, num_heads=4, max_prompt_tokens=24,
                     max_new_tokens=5),
        BuildContext(Path("."), 0, "cpu", task=task),
    )
    prompts = [task.prompt(e) for e in task.split.valid[: args.users]]
    total_users = len(task.split.valid) + len(task.split.test)
    allowed = task.codec.texts()
    for batch in args.batch:
        for name, constraint in (("unconstrained", None), ("constrained", allowed)):
            started = time.perf_counter()
            for start in range(0, len(prompts), batch):
                top_k_texts(generator, prompts[start : start + batch], 10, constraint)
            seconds = time.perf_counter() - started
            key = f"{name}_batch{batch}"
            out[key] = {"seconds": seconds, "users": len(prompts),
                        "extrapolated_all_users_both_splits_s":
                            seconds / len(prompts) * total_users}
            print(key, out[key], flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

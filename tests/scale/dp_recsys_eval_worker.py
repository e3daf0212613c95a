"""One rank of the sharded next-item evaluation check (launched by test_sharded_eval.py
through torchrun, or run plainly for the one-process reference).

Builds the small Beauty-like fixture task and a tiny untrained ``causal`` policy (the same
seed on every rank, so the same weights), evaluates it (constrained beam search, every user
of both splits) and writes ``OUT/recsys-<rank>-of-<world>.json`` with the metrics and the
users each rank searched."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adagrpo"))

from adagrpo_kit import write_beauty_fixture
from advx.components import BuildContext, Components
from advx.distributed import init, rank, world_size
from advx_causal import CausalConfig, build_causal
from advx_recsys import NextItemConfig, build_next_item


def main(out: Path) -> None:
    init()
    run_dir = out / f"run-{world_size()}-{rank()}"
    folder = write_beauty_fixture(run_dir / "data", users=31)  # odd: uneven shares
    cfg = NextItemConfig(path=str(folder / "seq.txt"), attributes=str(folder / "attrs.json"),
                         codebook=[3, 3], svd_dim=4, history=6, topk=5, constrained=True,
                         eval_batch_size=4)
    task = build_next_item(cfg, BuildContext(run_dir=run_dir, seed=0, device="cpu"))
    generator = build_causal(CausalConfig(d_model=16, num_layers=1, num_heads=2,
                                          max_new_tokens=4),
                             BuildContext(run_dir=run_dir, seed=0, device="cpu", task=task))
    searched: list[str] = []
    search = generator.beam_search

    def recording(prompts, k, allowed=None):
        searched.extend(p.meta["user"] for p in prompts)
        return search(prompts, k, allowed=allowed)

    generator.beam_search = recording  # type: ignore[method-assign]
    metrics = task.evaluate(Components(task=task, generator=generator), "test")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"recsys-{rank()}-of-{world_size()}.json").write_text(json.dumps(
        {"metrics": metrics, "searched": searched}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))

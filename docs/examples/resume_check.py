"""Resume equals an uninterrupted run, on the real headline recipe (small budget).

Runs recipes/ppo_cls_loss.yaml twice with the same seed: once straight through, once stopped
by a lifecycle hook inside round 2 and continued with ``run_recipe(resume=...)``; compares
metrics.jsonl record by record (wall-clock ``time/*`` fields excepted). Exits 1 on a
difference and prints it.

    .venv/bin/python docs/examples/resume_check.py [OUT_DIR]
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import advx
import torch
from advx.runner import run_recipe

OVERRIDES = ["loop.rounds=2", "loop.rl_steps=2", "generator.epochs=2", "classifier.epochs=1",
             "task.eval_generate=8"]


class Stop(Exception):
    pass


class StopInRound2:
    @advx.hookimpl
    def advx_on_step_end(self, run, round, step, metrics):
        if round == 2 and step == 1:
            raise Stop


def metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def main() -> int:
    torch.set_num_threads(1)
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/advx_resume_check")
    started = time.time()
    run_recipe("recipes/ppo_cls_loss.yaml", OVERRIDES, run_dir=root / "full")
    with contextlib.suppress(Stop):
        run_recipe("recipes/ppo_cls_loss.yaml", OVERRIDES, run_dir=root / "stopped",
                   plugins=[StopInRound2()])
    run_recipe(None, resume=root / "stopped")
    full, resumed = metrics(root / "full"), metrics(root / "stopped")
    print(f"{len(full)} vs {len(resumed)} records, {time.time() - started:.0f}s")
    if full == resumed:
        print("IDENTICAL")
        return 0
    for a, b in zip(full, resumed, strict=False):
        if a != b:
            print(a["kind"], a["round"], a.get("step"),
                  {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)})
    print("DIFFERENT")
    return 1


if __name__ == "__main__":
    sys.exit(main())

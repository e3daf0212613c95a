"""Time one evaluation of the COCO text task at the study's settings (BLEU-2..5 of 1,000
samples against the 10,000 test captions, self-BLEU-2..5 of 500, NLL-test of all 10,000
captions, at τ = 1 and the five temperatures of ``compares/seqgan_coco_texygen.yaml``), the
code as it is against the code before, side by side in one process.

Before (replayed here): the references' n-gram maxima counted again for every order and every
sample set; the generator's logits copied in full to mask two columns; NLL-test batches in
file order (padded to each batch's longest caption). Now: references counted once per run
(``advx_text_tasks.bleu.References``), the two columns written in place, batches of similar
length (``nll_per_sample``). The metrics of both are printed side by side: they must agree.

The generator gets ``--sft-epochs`` of MLE first, so its samples have caption-like lengths
(the cost of BLEU depends on them; the NLL's does not depend on the weights).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/text_eval.py
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
TEMPERATURES = "task.temperatures=[0.7,0.8,0.9,1.1,1.2]"


def _nll_file_order(generator, samples, temperature, batch):  # the code before, replayed
    totals, tokens = [], []
    for start in range(0, len(samples), batch):
        nll = generator.nll(samples[start : start + batch], temperature=temperature)
        totals += nll.total.detach().double().cpu().tolist()
        tokens += nll.tokens.detach().double().cpu().tolist()
    return np.array(totals), np.array(tokens)


def _masked_copy(self, logits, temperature=1.0):  # LSTMGenerator._logits before, replayed
    if temperature != 1.0:
        logits = logits / temperature
    if self.vocab.banned_ids:
        logits = logits.masked_fill(self._banned, float("-inf"))
    return logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes/seqgan_coco_texygen.yaml"))
    parser.add_argument("--sft-epochs", type=int, default=1)
    parser.add_argument("overrides", nargs="*", help="recipe key=value overrides")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/text_eval.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    import advx_seqgan.lstm as lstm
    import advx_text_tasks.bleu as bleu
    import advx_text_tasks.tasks as tasks
    from advx.build import build_components
    from advx.loop import seed_everything
    from advx.plugins import get_registry
    from advx.recipe import load_recipe, validate_recipe

    overrides = [TEMPERATURES, f"generator.epochs={args.sft_epochs}", *args.overrides]
    recipe = validate_recipe(load_recipe(args.recipe, overrides), get_registry())
    seed_everything(0)
    components, _ = build_components(recipe, Path(tempfile.mkdtemp()), quiet=True)
    task, generator = components.task, components.generator
    started = time.perf_counter()
    generator.sft(task.generator_train())
    sft_s = time.perf_counter() - started
    task.baselines()  # computed on the first evaluation only: not part of either timing

    now = (tasks.nll_per_sample, lstm.LSTMGenerator._logits)

    class _Recount:  # sentence_bleus before: a fresh count for every order and sample set
        def __init__(self, references):
            self.references = references

        def sentence_bleus(self, hyps, order):
            return bleu.References(self.references, order).sentence_bleus(hyps, order)

    def evaluate(before: bool) -> tuple[dict[str, float], float, float]:
        tasks.nll_per_sample = _nll_file_order if before else now[0]
        lstm.LSTMGenerator._logits = _masked_copy if before else now[1]
        # a cached_property lives in the instance's __dict__: "now" counts inside the timing
        task.__dict__.pop("counted_references", None)
        if before:
            task.__dict__["counted_references"] = _Recount(task.references)
        seed_everything(1)  # the same samples for both
        cpu, wall = time.process_time(), time.perf_counter()
        metrics = task.evaluate(components, "benchmark")
        return metrics, time.process_time() - cpu, time.perf_counter() - wall

    before_m, before_cpu, before_wall = evaluate(before=True)
    now_m, now_cpu, now_wall = evaluate(before=False)
    tasks.nll_per_sample, lstm.LSTMGenerator._logits = now

    keys = [k for k in now_m if not k.startswith("baseline/") and not k.endswith(
        ("_se", "_resolvable"))]
    worst = max(abs(now_m[k] - before_m[k]) / max(abs(before_m[k]), 1e-12) for k in keys)
    print(f"{'variant':<8} {'CPU s':>8} {'wall s':>8} {'speed-up (CPU)':>15}")
    print(f"{'before':<8} {before_cpu:>8.1f} {before_wall:>8.1f} {1.0:>14.2f}x")
    print(f"{'now':<8} {now_cpu:>8.1f} {now_wall:>8.1f} {before_cpu / now_cpu:>14.2f}x")
    print(f"{len(keys)} metrics, largest relative difference before/now: {worst:.2e}")
    for k in ("bleu2", "self_bleu2", "nll_test", "bleu4@t0.7", "nll_test@t1.2"):
        print(f"  {k:<14} before {before_m[k]:.6f}  now {now_m[k]:.6f}")
    record = {
        "before": {"cpu_s": before_cpu, "wall_s": before_wall},
        "now": {"cpu_s": now_cpu, "wall_s": now_wall},
        "speedup_cpu": before_cpu / now_cpu, "max_relative_metric_difference": worst,
        "metrics_compared": len(keys), "sft_s": sft_s,
        "setup": {"recipe": str(Path(args.recipe).relative_to(ROOT)), "overrides": overrides,
                  "generator_parameters": sum(p.numel() for p in generator.model.parameters()),
                  "threads": 1, "python": platform.python_version(),
                  "torch": torch.__version__, "machine": platform.machine()},
    }
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())

"""The cold-start experiment: does adversarial PPO augmentation beat no augmentation and
SFT-generator augmentation on the cold-start products' real queries?

Conditions (one recipe each, identical task/classifier/generator keys):
    a  recipes/cls_no_augment.yaml   classifier on warm products only
    b  recipes/sft_augment.yaml      + queries from the SFT generator G_0 for cold products
    c  recipes/ppo_cls_loss.yaml     + queries from the PPO-trained generator G_N (cls_loss)

    python experiments/cold_start.py run --seeds 0 1 2 --out runs/cold_start --jobs 3 \
        --set reward.alpha=1.0                    # extra overrides for every run
        --set-ppo optimizer.value_lr=1e-4         # ... for the (c) runs only (PPO keys)
    python experiments/cold_start.py report --out runs/cold_start > table.md

``run`` launches ``advx run`` per (condition, seed) with ``nice -n 10`` and one thread each
(the machine is shared), seeds round-robin across conditions so partial results stay
balanced. ``report`` reads every run's ``metrics.jsonl`` and prints markdown: cold-start
PR-AUC / ROC-AUC mean ± std after every round, paired differences against (a), the reward
terms and classifier losses over rounds, example generated queries, and wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONDITIONS = {
    "a_no_augment": "recipes/cls_no_augment.yaml",
    "b_sft_augment": "recipes/sft_augment.yaml",
    "c_ppo_adversarial": "recipes/ppo_cls_loss.yaml",
}
# The CrowdFlower budget every condition shares (see docs/results/cold_start.md).
COMMON = [
    "task.preset=crowdflower",
    "task.max_products=1500",
    "task.cold_fraction=0.2",
    "task.max_field_chars=80",
    "task.max_augment_products=100",
    "task.eval_generate=16",
    "classifier.epochs=2",
    "classifier.max_length=40",
    "loop.rounds=4",
    "loop.checkpoint=false",
]
GENERATOR = ["generator.epochs=3", "generator.max_prompt_tokens=32"]
PER_CONDITION = {
    "a_no_augment": [],
    "b_sft_augment": GENERATOR,
    "c_ppo_adversarial": [*GENERATOR, "loop.rl_steps=6", "loop.batch_size=16"],
}


def overrides_for(condition: str, args: argparse.Namespace) -> list[str]:
    """``--set`` for every run, ``--set-ppo`` only where the recipe has an optimizer (c)."""
    ppo = args.ppo_overrides if condition == "c_ppo_adversarial" else []
    return [*args.overrides, *ppo]


def command(condition: str, seed: int, run_dir: Path, extra: list[str]) -> list[str]:
    return ["nice", "-n", "10", str(REPO / ".venv/bin/advx"), "run", CONDITIONS[condition],
            *COMMON, *PER_CONDITION[condition], *extra, f"seed={seed}", "--run-dir",
            str(run_dir), "-q"]


def run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    jobs = [(c, s) for s in args.seeds for c in args.conditions]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    running: list[tuple[subprocess.Popen, str, float]] = []
    while jobs or running:
        while jobs and len(running) < args.jobs:
            condition, seed = jobs.pop(0)
            run_dir = out / condition / f"seed-{seed}"
            if (run_dir / "summary.json").exists() and not args.force:
                status = json.loads((run_dir / "summary.json").read_text()).get("status")
                if status == "complete":
                    continue
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            cmd = command(condition, seed, run_dir, overrides_for(condition, args))
            log = open(out / condition / f"seed-{seed}.log", "w")  # noqa: SIM115
            log.write(" ".join(cmd) + "\n")
            log.flush()
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
            running.append((proc, f"{condition} seed {seed}", time.time()))
            print(f"started {condition} seed {seed}: {' '.join(cmd)}", flush=True)
        time.sleep(5)
        for item in list(running):
            proc, name, started = item
            if proc.poll() is not None:
                running.remove(item)
                print(f"finished {name}: exit {proc.returncode} after "
                      f"{time.time() - started:.0f} s", flush=True)


# ---------------------------------------------------------------------------- report


def _rounds(run_dir: Path) -> tuple[dict[int, dict], list[dict]]:
    rounds, steps = {}, []
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return rounds, steps
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("kind") == "round":
            rounds[record["round"]] = record
        elif record.get("kind") == "step":
            steps.append(record)
    return rounds, steps


def _fmt(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.4f} (n=1)"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def report(args: argparse.Namespace) -> None:
    out = Path(args.out)
    runs: dict[str, dict[int, tuple[dict, list]]] = defaultdict(dict)
    for condition in CONDITIONS:
        for seed_dir in sorted((out / condition).glob("seed-*")):
            if seed_dir.is_dir() and int(seed_dir.name.split("-")[1]) in args.seeds:
                runs[condition][int(seed_dir.name.split("-")[1])] = _rounds(seed_dir)
    if args.baseline and "a_no_augment" not in runs:  # (a) does not depend on the generator
        for seed_dir in sorted((Path(args.baseline) / "a_no_augment").glob("seed-*")):
            if seed_dir.is_dir() and int(seed_dir.name.split("-")[1]) in args.seeds:
                runs["a_no_augment"][int(seed_dir.name.split("-")[1])] = _rounds(seed_dir)
        runs = {"a_no_augment": runs.pop("a_no_augment"), **runs}
    n_rounds = max((max(r) for c in runs.values() for r, _ in c.values() if r), default=0)
    lines: list[str] = []
    say = lines.append

    for metric in ("cold/pr_auc", "cold/roc_auc", "cold/f1"):
        say(f"\n### `{metric}` on the cold-start products' real queries (mean ± std over seeds)\n")
        say("| condition | seeds | " + " | ".join(f"round {r}" for r in range(n_rounds + 1)) + " |")
        say("|---|---|" + "---|" * (n_rounds + 1))
        for condition, seeds in runs.items():
            cells = [_fmt([rs[r][metric] for rs, _ in seeds.values()
                           if r in rs and metric in rs[r]]) for r in range(n_rounds + 1)]
            say(f"| {condition} | {sorted(seeds)} | " + " | ".join(cells) + " |")

    say("\n### Paired difference in `cold/pr_auc` against (a), same seed (mean ± std)\n")
    say("| condition | " + " | ".join(f"round {r}" for r in range(n_rounds + 1)) + " |")
    say("|---|" + "---|" * (n_rounds + 1))
    base = runs.get("a_no_augment", {})
    for condition, seeds in runs.items():
        if condition == "a_no_augment":
            continue
        cells = []
        for r in range(n_rounds + 1):
            diffs = [rs[r]["cold/pr_auc"] - base[s][0][r]["cold/pr_auc"]
                     for s, (rs, _) in seeds.items()
                     if s in base and r in rs and r in base[s][0]]
            cells.append(_fmt(diffs).replace(" (n=1)", "") if diffs else "–")
        say(f"| {condition} | " + " | ".join(cells) + " |")

    say("\n### Why: classifier loss on generated vs real cold queries, generator statistics\n")
    keys = ["cold/cls_loss", "gen/cls_loss", "gen/label_agreement", "gen/distinct_ratio",
            "gen/mean_words", "cls/n_synthetic", "cls/valid_loss",
            "cls/best_epoch"]
    say("| condition | metric | " + " | ".join(f"round {r}" for r in range(n_rounds + 1)) + " |")
    say("|---|---|" + "---|" * (n_rounds + 1))
    for condition, seeds in runs.items():
        for key in keys:
            cells = [[rs[r][key] for rs, _ in seeds.values() if r in rs and key in rs[r]]
                     for r in range(n_rounds + 1)]
            if any(cells):
                say(f"| {condition} | `{key}` | " + " | ".join(_fmt(c).replace(" (n=1)", "")
                                                        for c in cells) + " |")

    say("\n### Reward terms and PPO diagnostics per round (mean over the round's steps, "
        "then mean ± std over seeds)\n")
    step_keys = sorted({k for seeds in runs.values() for _, steps in seeds.values()
                        for s in steps for k in s if k.startswith(("reward/", "optim/", "ppo/"))})
    if step_keys:
        say("| condition | metric | " + " | ".join(f"round {r}" for r in range(1, n_rounds + 1))
            + " |")
        say("|---|---|" + "---|" * n_rounds)
        for condition, seeds in runs.items():
            for key in step_keys:
                cells = []
                for r in range(1, n_rounds + 1):
                    per_seed = [np.mean([s[key] for s in steps if s["round"] == r and key in s])
                                for _, steps in seeds.values()
                                if any(s["round"] == r and key in s for s in steps)]
                    cells.append(_fmt(per_seed).replace(" (n=1)", ""))
                if any(c != "–" for c in cells):
                    say(f"| {condition} | `{key}` | " + " | ".join(cells) + " |")

    say("\n### Example generated queries (seed 0, fixed cold prompts, first 6 per round)\n")
    for condition in CONDITIONS:
        folder = out / condition / "seed-0" / "cold_start"
        if not folder.exists():
            continue
        say(f"\n**{condition}**\n")
        for stage in ["pretrain", *[f"round-{r}" for r in range(1, n_rounds + 1)]]:
            path = folder / f"{stage}.jsonl"
            if not path.exists():
                continue
            rows = [json.loads(x) for x in path.read_text().splitlines()[:6]]
            shown = "; ".join(f"[{r['label']}] {r['title'][:40]!r} → {r['query']!r}" for r in rows)
            say(f"- {stage}: {shown}")

    say("\n### Wall time per run (seconds)\n")
    say("| condition | " + " | ".join(f"seed {s}" for s in args.seeds) + " |")
    say("|---|" + "---|" * len(args.seeds))
    for condition in CONDITIONS:
        cells = []
        for s in args.seeds:
            summary = out / condition / f"seed-{s}" / "summary.json"
            if summary.exists():
                data = json.loads(summary.read_text())
                cells.append(f"{data.get('wall_s', float('nan')):.0f} "
                             f"({data.get('status')})")
            else:
                cells.append("–")
        say(f"| {condition} | " + " | ".join(cells) + " |")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["run", "report", "commands"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS),
                        choices=list(CONDITIONS))
    parser.add_argument("--out", default="runs/cold_start")
    parser.add_argument("--jobs", type=int, default=9)
    parser.add_argument("--force", action="store_true", help="rerun completed runs")
    parser.add_argument("--baseline", default="",
                        help="report: take (a) from this --out folder when --out has none")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="extra overrides for every run, e.g. --set reward.alpha=1.0")
    parser.add_argument("--set-ppo", dest="ppo_overrides", nargs="+", default=[],
                        metavar="KEY=VALUE",
                        help="extra overrides for the (c) runs only: (a) and (b) have no "
                             "optimizer block, e.g. --set-ppo optimizer.value_lr=1e-4")
    args = parser.parse_args(argv)
    if args.action == "run":
        run(args)
    elif args.action == "report":
        report(args)
    else:
        for s in args.seeds:
            for c in args.conditions:
                run_dir = Path(args.out) / c / f"seed-{s}"
                print(" ".join(command(c, s, run_dir, overrides_for(c, args))))


if __name__ == "__main__":
    main(sys.argv[1:])

"""A cross-fitted judge of label agreement (issue 14, point 2; docs/results/cold_start.md,
"Best-of-4 over 10 seeds").

The probe's judge, C_0, is fitted on warm products only; it agrees with CrowdFlower's own
labels on the real cold queries only ≈ 0.73 of the time, so a generated query it rejects may be
the judge's error. This judge also learns from the cold products' real judged pairs, without
ever judging a product it has seen: the cold products are split into ``--folds`` folds, and
fold k's products are judged by a classifier (the recipe's, fresh from its pretrained weights)
fitted on the warm pairs (with the ``task.fit_other_negatives`` pairs the probe used) plus the
real pairs of the other folds' cold products — cross-fitting. It reports, per probe file, the
judge's held-out agreement with the real cold labels (its accuracy, overall and per class) and
the agreement of every generated query the probe recorded (``queries``, written by
experiments/cold_start_sft_probe.py since 2026-12-04), beside C_0's.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/cold_start_judge.py \
        experiments/cold_start_best_of_4_probe/seed-0.jsonl [--folds 5] > judge.jsonl
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from advx.build import build_components
from advx.errors import AdvxError
from advx.rollout import Sample
from advx.runner import prepare_recipe
from cold_start_sft_probe import per_class as agreement  # the probe's own measure


def judge_file(path: Path, data: str, folds: int) -> dict:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    generated = {(line["epoch"], name): value["queries"] for line in lines[1:]
                 for name, value in line.items() if isinstance(value, dict) and "queries" in value}
    if not lines or "overrides" not in lines[0] or not generated:
        raise ValueError(f"{path}: expected a probe output with recorded queries (written by "
                         "experiments/cold_start_sft_probe.py since 2026-12-04)")
    overrides = [f"task.path={data}", *lines[0]["overrides"]]
    t0 = time.time()
    spec = prepare_recipe("recipes/cls_no_augment_crowdflower.yaml", overrides)
    components, ctx = build_components(spec, Path(tempfile.mkdtemp()))
    task = components.task
    cold = task.cold_eval()
    products = sorted({s.prompt.meta["product_id"] for s in cold})
    fold_of = {p: k % folds for k, p in
               enumerate(np.random.default_rng(0).permutation(products).tolist())}
    cold_fold = np.array([fold_of[s.prompt.meta["product_id"]] for s in cold])
    real_judged = np.full(len(cold), -1)
    gen_judged = {cell: np.full(len(q), -1) for cell, q in generated.items()}
    for k in range(folds):
        # a fresh classifier each fold, the recipe's from its pretrained weights (its factory
        # seeds itself, so every fold starts alike); fold 0 takes the one built with the task
        clf = components.classifier if k == 0 else ctx.build(
            "classifier", spec.components["classifier"])
        seen = [cold[i] for i in np.flatnonzero(cold_fold != k)]
        clf.fit([*task.classifier_train(), *seen])
        held = np.flatnonzero(cold_fold == k)
        real_judged[held] = clf.predict_proba([cold[i] for i in held]).argmax(1).numpy()
        for cell, queries in generated.items():
            mine = [i for i, q in enumerate(queries) if fold_of.get(q[0]) == k]
            if mine:
                samples = [Sample(text=queries[i][2], prompt=task.prompt(queries[i][0],
                                  queries[i][1]), label=queries[i][1]) for i in mine]
                gen_judged[cell][mine] = clf.predict_proba(samples).argmax(1).numpy()
    truth = np.array([s.label for s in cold])
    out = {"file": str(path), "folds": folds, "real_cold_crossfit": agreement(real_judged, truth)}
    for (epoch, name), queries in generated.items():
        wanted = np.array([q[1] for q in queries])
        judged = gen_judged[(epoch, name)]
        unjudged = int((judged < 0).sum())  # a product outside the cold split: say so
        out[f"epoch {epoch}, {name}"] = {
            "crossfit": agreement(judged[judged >= 0], wanted[judged >= 0]),
            "c0": agreement(np.array([q[3] for q in queries]), wanted), "unjudged": unjudged}
    out["t"] = time.time() - t0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--data", default="/work/shared/data/crowdflower")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    if args.folds < 2:
        parser.error(f"--folds {args.folds}: expected at least 2")
    for path in args.files:
        try:
            print(json.dumps(judge_file(path, args.data, args.folds)), flush=True)
        except (OSError, ValueError, AdvxError) as exc:
            print(f"cold_start_judge: {exc}", file=sys.stderr)
            sys.exit(2)


if __name__ == "__main__":
    main()

"""SFT probe for the real-data defaults (docs/results/cold_start.md, "New defaults"): label
agreement of BERT2BERT-MiniLM queries under C_0, by SFT epoch and sampling setting.

Builds the components of recipes/sft_augment_crowdflower.yaml (plus any ``--set`` overrides,
e.g. another ``task.label_map``), fits C_0 on the warm products, reports C_0's agreement with
the real cold queries (overall and per class), then trains the generator one SFT epoch at a
time and, after each epoch listed in ``--report``, samples one query per fixed evaluation
prompt (task.eval_generate cold products x 2 labels, capped by the products available) at each
sampling setting and reports the fraction whose C_0-predicted label is the requested one
(overall, relevant, irrelevant), and every query as [product_id, requested label, text, C_0's
label] so another judge can score them later. ``--report 0`` stops after C_0's line (no SFT).
C_0's line also gives its agreement with unambiguous negatives (``other_product_c0``): each
real cold query beside another cold product that shares no word with it, requested label
irrelevant — the ceiling for a generator taught them by ``--set task.sft_other_negatives=...``;
and ``title_crop_c0``: cold titles' word crops as relevant queries
(``task.sft_title_queries``).

    OMP_NUM_THREADS=1 .venv/bin/python experiments/cold_start_sft_probe.py \
        [--data /path/to/crowdflower] [--set task.label_map.3=null] > probe.jsonl

Since 2026-12-06 the preset sets ``task.fit_other_negatives`` and ``task.sft_other_negatives``
to 1.0 (docs/results/cold_start.md, "Fit negatives in the presets' own configuration"). Probe
lines dated earlier whose command does not set a key ran with it at 0: add ``--set
task.fit_other_negatives=0`` (and ``--set task.sft_other_negatives=0``) to reproduce them.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from advx.build import build_components
from advx.errors import AdvxError
from advx.label_specific import most_label_specific
from advx.runner import prepare_recipe
from advx_product_relevance.baselines import word_overlap
from advx_product_relevance.task import other_product_pairs, title_crops
from sklearn.metrics import average_precision_score

# name -> (temperature, top_p, candidates k): k > 1 samples k queries per prompt and keeps the
# one the generator itself finds most label-specific (advx.label_specific, what
# loop.augment_candidates / task.eval_candidates do)
SETTINGS = {"T1": (1.0, 1.0, 1), "T0.7": (0.7, 1.0, 1), "p0.9": (1.0, 0.9, 1),
            "T0.5": (0.5, 1.0, 1), "T1k4": (1.0, 1.0, 4), "T0.7k4": (0.7, 1.0, 4),
            "T0.5k4": (0.5, 1.0, 4), "T1k8": (1.0, 1.0, 8)}


def per_class(predicted: np.ndarray, requested: np.ndarray) -> dict[str, float]:
    ok = predicted == requested

    def mean(where: np.ndarray) -> float:  # NaN, without numpy's warning, for an empty side
        return float(ok[where].mean()) if where.any() else float("nan")

    return {"agree": float(ok.mean()), "agree_rel": mean(requested == 1),
            "agree_irr": mean(requested == 0), "n": len(ok),
            "n_rel": int((requested == 1).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="/work/shared/data/crowdflower")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override (repeatable)")
    parser.add_argument("--report", default="2,3,4,5", help="SFT epochs to evaluate after")
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help=f"sampling settings among {', '.join(SETTINGS)}")
    args = parser.parse_args()
    try:
        report = sorted(int(e) for e in args.report.split(","))
    except ValueError:
        parser.error(f"--report {args.report!r}: expected epochs as 3,4 (0 = C_0 only)")
    unknown = [n for n in args.settings.split(",") if n not in SETTINGS]
    if unknown:
        parser.error(f"--settings: unknown {unknown}; choose among {', '.join(SETTINGS)}")
    settings = {name: SETTINGS[name] for name in args.settings.split(",")}

    t0 = time.time()
    try:  # a bad --set key or data path: one message and exit 2, as `advx run` does
        spec = prepare_recipe("recipes/sft_augment_crowdflower.yaml",
                              [f"task.path={args.data}", "generator.epochs=1",
                               "task.eval_generate=100", *args.set])
        c, _ = build_components(spec, Path(tempfile.mkdtemp()))
    except AdvxError as exc:
        parser.error(str(exc))
    task, gen, clf = c.task, c.generator, c.classifier
    clf.fit(task.classifier_train())
    cold = task.cold_eval()
    proba = clf.predict_proba(cold).numpy()
    truth = np.array([s.label for s in cold])
    real = per_class(proba.argmax(1), truth)
    real["pr_auc"] = float(average_precision_score(truth == task.config.positive_label,
                                                   proba[:, task.config.positive_label]))
    # the judge on unambiguous negatives: each cold query beside another cold product that
    # shares no word with it (what a generator taught by task.sft_other_negatives may write)
    pairs = other_product_pairs(task.cold_rows, task.products, len(cold),
                                np.random.default_rng(0))
    other = per_class(clf.predict_proba(task.negative_samples(pairs)).argmax(1).numpy(),
                      np.zeros(len(pairs), dtype=int))
    # ... and on title crops (what task.sft_title_queries teaches for the relevant label)
    crops = title_crops(task.cold_rows, task.products, len(cold), np.random.default_rng(0))
    title = per_class(clf.predict_proba(task.positive_samples(crops)).argmax(1).numpy(),
                      np.full(len(crops), task.config.positive_label))
    print(json.dumps({"overrides": args.set, "real_cold_c0": real, "other_product_c0": other,
                      "title_crop_c0": title,
                      "n_generator_train": len(task.generator_train()),
                      "t": time.time() - t0}), flush=True)

    def agree(temperature: float, top_p: float, k: int) -> dict:
        gen.config.top_p = top_p
        torch.manual_seed(0)
        rollout = gen.sample(task._eval_prompts, n=k, temperature=temperature)
        gen.config.top_p = 1.0
        if k > 1:  # the most label-specific of each prompt's k candidates
            rollout, _ = most_label_specific(gen, task, rollout, k)
        synthetic = task.synthetic_samples(rollout)
        judged = clf.predict_proba(synthetic).argmax(1).numpy()
        requested = np.array([s.label for s in synthetic])
        out = per_class(judged, requested)
        out["words"] = float(np.mean([len(t.split()) for t in rollout.texts]))
        # on-topic or not: share of the query's words in the title, per requested label
        overlap = np.array([word_overlap(s.text, s.prompt.meta["title"]) for s in synthetic])
        out["overlap_rel"] = float(overlap[requested == 1].mean())
        out["overlap_irr"] = float(overlap[requested == 0].mean())
        out["ex"] = [[s.prompt.meta["label_name"], s.prompt.meta["title"][:50], s.text, int(j)]
                     for s, j in zip(synthetic[:8], judged, strict=False)]
        # every query, so that another judge can score them later without regenerating
        out["queries"] = [[s.prompt.meta["product_id"], int(r), s.text, int(j)]
                          for s, r, j in zip(synthetic, requested, judged, strict=True)]
        return out

    for epoch in range(1, report[-1] + 1):
        loss = gen.sft(task.generator_train())["sft/loss"]
        if epoch in report:
            out = {"epoch": epoch, "sft_loss": loss, "t": time.time() - t0}
            out.update({name: agree(*setting) for name, setting in settings.items()})
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()

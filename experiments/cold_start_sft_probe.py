"""SFT probe for the real-data defaults (docs/results/cold_start.md, "New defaults"): label
agreement of BERT2BERT-MiniLM queries under C_0, by SFT epoch and sampling setting.

Builds the components of recipes/sft_augment_crowdflower.yaml, fits C_0 on the warm products,
then trains the generator one SFT epoch at a time (epochs 2-5 evaluated) and, for the task's
fixed evaluation prompts (task.eval_generate=100 -> 100 cold products x 2 labels, capped by the
products available), samples one query per prompt at several temperatures / top-p and reports
the fraction whose C_0-predicted label is the requested one (overall, relevant, irrelevant).

    PYTHONPATH=core:plugins OMP_NUM_THREADS=1 python experiments/cold_start_sft_probe.py \
        [/path/to/crowdflower] > probe.jsonl
"""
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from advx.build import build_components
from advx.runner import prepare_recipe

DATA = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/crowdflower"
t0 = time.time()
spec = prepare_recipe("recipes/sft_augment_crowdflower.yaml",
                      [f"task.path={DATA}", "generator.epochs=1",
                       "task.eval_generate=100"])
c, ctx = build_components(spec, Path(tempfile.mkdtemp()))
task, gen, clf = c.task, c.generator, c.classifier
clf.fit(task.classifier_train())
cold = task.cold_eval()
pred = clf.predict_proba(cold).argmax(1).numpy()
real = float((pred == np.array([s.label for s in cold])).mean())
print(json.dumps({"real_cold_agreement_c0": real, "n_cold": len(cold),
                  "t": time.time() - t0}), flush=True)
prompts = task._eval_prompts
def agree(temperature, top_p=1.0):
    gen.config.top_p = top_p
    torch.manual_seed(0)
    r = gen.sample(prompts, n=1, temperature=temperature)
    gen.config.top_p = 1.0
    syn = task.synthetic_samples(r)
    p = clf.predict_proba(syn).argmax(1).numpy()
    y = np.array([s.label for s in syn])
    ok = p == y
    return {"agree": float(ok.mean()), "agree_rel": float(ok[y == 1].mean()),
            "agree_irr": float(ok[y == 0].mean()), "n": len(syn),
            "words": float(np.mean([len(t.split()) for t in r.texts])),
            "ex": r.texts[:6]}
for epoch in range(1, 6):
    m = gen.sft(task.generator_train())
    if epoch >= 2:
        out = {"epoch": epoch, "sft_loss": m["sft/loss"], "t": time.time() - t0}
        for name, (temp, top_p) in {"T1": (1.0, 1.0), "T0.7": (0.7, 1.0), "p0.9": (1.0, 0.9),
                                    "T0.5": (0.5, 1.0)}.items():
            out[name] = agree(temp, top_p)
        print(json.dumps(out), flush=True)

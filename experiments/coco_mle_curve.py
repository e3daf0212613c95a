"""MLE at Texygen's COCO settings, one epoch at a time, from the seeded initialisation of a
study start: held-out and training NLL per token every few epochs, BLEU-2 / self-BLEU-2 every
10 (docs/results/seqgan.md 3b). Usage: python experiments/coco_mle_curve.py START_RUN EPOCHS;
prints JSON lines."""
import json
import shutil
import sys
import time

from advx.runner import prepare_recipe, run_plugins
from advx.use import build_at, existing_run
from advx_text_tasks.tasks import _sample_texts, nll_per_sample

rundir = existing_run(sys.argv[1])
epochs = int(sys.argv[2])
with run_plugins() as pm:
    spec = prepare_recipe(rundir.recipe_path, ["generator.epochs=1"], pm)
    exp, scratch = build_at(spec, rundir, pm)
task, gen = exp.c.task, exp.c.generator
train = task.generator_train()
held = task.test
sub = task.train[:3000]
t0 = time.time()
for epoch in range(1, epochs + 1):
    gen.sft(train)
    if epoch in (1, 2, 3, 5, 8) or epoch % 5 == 0:
        tt, tk = nll_per_sample(gen, held, 1.0, 256)
        rt, rk = nll_per_sample(gen, sub, 1.0, 256)
        row = {"epoch": epoch, "nll_test": tt.sum() / tk.sum(),
               "nll_train3000": rt.sum() / rk.sum(), "wall_s": round(time.time() - t0, 1)}
        if epoch in (2, 5) or epoch % 10 == 0:
            texts = _sample_texts(gen, 1000, 1.0, 256)
            q = task.quality_diversity(texts)
            row.update({k: q[k] for k in ("bleu2", "self_bleu2", "bleu4", "self_bleu4")})
        print(json.dumps(row), flush=True)
shutil.rmtree(scratch, ignore_errors=True)

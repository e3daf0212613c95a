"""NLL-test of a COCO checkpoint per token, split by whether a test caption holds a word outside
the generator's vocabulary, beside the unigram baseline and the training NLL (docs/results/
seqgan.md 3b). Usage: python experiments/coco_nll_split.py RUN_DIR."""
import shutil
import sys

import numpy as np
from advx.use import open_run
from advx_text_tasks.baselines import Unigram
from advx_text_tasks.tasks import nll_per_sample

opened = open_run(sys.argv[1])
task, gen = opened.components.task, opened.components.generator
oov = np.array([gen.vocab.unk_id in gen.vocab.encode(s.text) for s in task.test])
total, tokens = nll_per_sample(gen, task.test, 1.0, 256)
unigram = Unigram([s.text.split() for s in task.train])
u_total, u_tokens = (np.asarray(a) for a in unigram.nll([s.text.split() for s in task.test]))
for name, keep in (("all", np.ones_like(oov)), ("no OOV word", ~oov), ("an OOV word", oov)):
    print(f"{name:12s} captions {keep.sum():5d}  model {total[keep].sum() / tokens[keep].sum():.3f}"
          f"  unigram {u_total[keep].sum() / u_tokens[keep].sum():.3f}")
train_total, train_tokens = nll_per_sample(gen, task.train[:3000], 1.0, 256)
print(f"training captions (first 3,000): model {train_total.sum() / train_tokens.sum():.3f}")
shutil.rmtree(opened.scratch, ignore_errors=True)

"""Tables 1-4 of docs/results/seqgan.md 3b from the seqgan_coco_texygen compare (its storage, or
its ledger on a fresh clone), as markdown. Usage: python experiments/coco_texygen_tables.py"""
import math

from advx.compare import load_compare
from advx.compare.cells import default_runs_dir, existing_storage, load_cells
from advx.compare.report import collect
from advx.stats import describe, paired

spec = load_compare("compares/seqgan_coco_texygen.yaml")
cells = load_cells(spec, existing_storage(spec, None, default_runs_dir(spec)))
data = collect(spec, cells)
V = data.values
cols = ["bleu2", "bleu3", "bleu4", "bleu5", "self_bleu2", "self_bleu3", "self_bleu4",
        "self_bleu5", "nll_test"]

def ms(vals):
    d = describe(list(vals))
    return f"{d.mean:.3f} ± {d.sd:.3f}" if d.n > 1 else (f"{d.mean:.3f}" if d.n else "–")

print("**Table 1.** τ = 1, mean ± sd over the seeds (n).\n")
print("| | " + " | ".join(cols) + " |")
print("|---|" + "---|" * len(cols))
print("| Texygen MLE | .731 | .497 | .305 | .189 | .916 | .769 | .583 | .408 | – |")
print("| Texygen SeqGAN | .745 | .498 | .294 | .180 | .950 | .840 | .670 | .489 | – |")
n = {c: len(V[c]["bleu2"]) for c in spec.conditions}
for c in spec.conditions:
    print(f"| advx {c} (n={n[c]}) | " + " | ".join(ms(V[c][m].values()) for m in cols) + " |")
for name in ("real", "unigram"):
    row = []
    for m in cols:
        vals = data.baselines.get(name, {}).get(m, {})
        row.append(f"{describe(list(vals.values())).mean:.3f}" if vals else "–")
    print(f"| *no training: {name}* | " + " | ".join(row) + " |")
print()
print("**Table 2.** Paired difference seqgan − mle per seed: mean [95 % Student t CI].\n")
print("| | " + " | ".join(cols) + " |")
print("|---|" + "---|" * len(cols))
row = []
for m in cols:
    r = paired(V["seqgan"][m], V["mle"][m])
    ci = f" [{r.ci_low:+.3f}, {r.ci_high:+.3f}]" if math.isfinite(r.ci_low) else ""
    row.append(f"{r.mean_diff:+.3f}{ci}")
print(f"| paired, n = {r.n} (t) | " + " | ".join(row) + " |")
print()
taus = ["0.7", "0.8", "0.9", "1", "1.1", "1.2"]
def key(m, t): return m if t == "1" else f"{m}@t{t}"
print("**Table 3.** The quality–diversity curve: both arms at each sampling temperature, "
      "mean ± sd over the seeds.\n")
print("| τ | mle BLEU-2 | mle self-BLEU-2 | mle NLL-test | seqgan BLEU-2 | seqgan self-BLEU-2 | "
      "seqgan NLL-test |")
print("|---|---|---|---|---|---|---|")
for t in taus:
    cells_ = []
    for c in spec.conditions:
        for m in ("bleu2", "self_bleu2", "nll_test"):
            vals = V[c].get(key(m, t), {})
            cells_.append(ms(vals.values()) if vals else "–")
    print(f"| {t} | " + " | ".join(cells_) + " |")
print()
rounds = sorted({r for s in data.by_round["bleu2"]["seqgan"].values() for r in s})
print("**Table 4.** `seqgan` over the adversarial epochs (rounds), mean over the seeds; round 0 "
      "is the shared start (= `mle`).\n")
print("| round | " + " | ".join(str(r) for r in rounds if r % 10 == 0 or r == rounds[-1]) + " |")
print("|---|" + "---|" * len([r for r in rounds if r % 10 == 0 or r == rounds[-1]]))
for m in ("bleu2", "self_bleu2", "nll_test"):
    curve = {c.seed: {int(r["round"]): r[m] for r in c.rounds if m in r}
             for c in cells if c.condition == "seqgan" and c.state == "done"}
    row = []
    for r in rounds:
        if r % 10 == 0 or r == rounds[-1]:
            vals = [s[r] for s in curve.values() if r in s]
            row.append(f"{describe(vals).mean:.3f}" if vals else "–")
    print(f"| seqgan {m} | " + " | ".join(row) + " |")
peak = {c.seed: max((r["bleu2"], int(r["round"])) for r in c.rounds if "bleu2" in r)
        for c in cells if c.condition == "seqgan" and c.state == "done"}
print("\nPeak BLEU-2 per seed (value, round): "
      + ", ".join(f"seed {k}: {v[0]:.3f} at {v[1]}" for k, v in sorted(peak.items())) + ".")

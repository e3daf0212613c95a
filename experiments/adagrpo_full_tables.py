"""The five-seed tables of docs/results/adagrpo.md ("Seed 4, and the paired differences over
all five seeds") and docs/results.md §3, from the adagrpo_beauty_full compare (its storage, or
its ledger on a fresh clone), as markdown.

Usage: python experiments/adagrpo_full_tables.py [--seed S]
(--seed S: that seed's per-condition table, the "Seed S" sections, from the ledger entries.)

What `advx compare show` does not print and this adds: each seed's shared start (the SFT
policy) evaluated on all users, read from the ledger's `_start/seed-S.json` — the study's own
`all-best-round-0` evaluation, or `start-all` made by `advx eval` where no cell's best round
was 0 — and every condition's paired difference to its start; a Holm correction of the
paired t p-values over the conditions compared with the baseline."""
import sys

from advx.compare import ledger, load_compare
from advx.compare.cells import default_runs_dir, existing_storage, load_cells
from advx.compare.report import collect
from advx.compare.spec import START
from advx.stats import describe, paired

spec = load_compare("compares/adagrpo_beauty_full.yaml")
data = collect(spec, load_cells(spec, existing_storage(spec, None, default_runs_dir(spec))))
HR, NDCG = "eval:all-final/test/hr@10", "eval:all-final/test/ndcg@10"
NAMES = {"nll": "NLL only", "mix_0.5": "mixture λ = 0.5", "mix_2.0": "mixture λ = 2",
         "adagrpo_0.5": "AdaGRPO λ = 0.5", "adagrpo_2.0": "AdaGRPO λ = 2",
         "adagrpo_logprob_2.0": "AdaGRPO λ = 2, `logprob`"}
conditions = list(spec.conditions)
seeds = sorted(set.intersection(*(set(data.values[c][HR]) for c in conditions)))


def start_metrics(seed: int) -> dict:
    entry = ledger.read_entry(ledger.entry_path(spec, START, seed)) or {}
    for name in ("all-best-round-0", "start-all"):
        found = (entry.get("evals") or {}).get(name)
        if found:
            return found["metrics"]
    raise SystemExit(f"seed {seed}: its start has no all-user evaluation; run advx eval "
                     f"runs/compares/{spec.name}/_start/seed-{seed} --round 0 "
                     f"task.eval_users=0 --name start-all")


def start_value(seed: int, metric: str = "test/hr@10") -> float:
    return float(start_metrics(seed)[metric])


def seed_table(seed: int) -> None:
    """One seed's conditions: all-user final metrics, the best round, the 2,000-user
    validation curve, and round 4's rollouts (ranker score, validity, gate, KL)."""
    print("| condition | test HR@10 (all users, final) | test NDCG@10 | test HR@5 | valid HR@10 "
          "| unconstrained hallucination | best round | valid HR@10 on the subset, rounds 0 → 4 "
          "| ranker score of the rollouts (round 4) | valid rollouts | gate open, rounds 1-4 "
          "| KL to π_ref (round 4) |")
    print("|---|" + "---|" * 11)
    m = start_metrics(seed)
    subset = ledger.read_entry(ledger.entry_path(spec, START, seed))["summary"]["final"]
    print(f"| the start (SFT) | {m['test/hr@10']:.4f} | {m['test/ndcg@10']:.4f} | "
          f"{m['test/hr@5']:.4f} | {m['valid/hr@10']:.4f} | "
          f"{100 * m['test/free/hallucination']:.3f} % | – | {subset['valid/hr@10']:.4f} |"
          + " – |" * 4)
    for c in conditions:
        entry = ledger.read_entry(ledger.entry_path(spec, c, seed))
        m, final = entry["evals"]["all-final"]["metrics"], entry["summary"]["final"]
        rounds = entry["user_attrs"]["rounds"]
        gates = [f"{100 * r['adagrpo/gate_open_rate']:.0f}" for r in rounds[1:]]
        gate = "–" if c == spec.baseline else (gates[0] if len(set(gates)) == 1
                                                else " / ".join(gates)) + " %"
        print(f"| {NAMES.get(c, c)} | {m['test/hr@10']:.4f} | {m['test/ndcg@10']:.4f} | "
              f"{m['test/hr@5']:.4f} | {m['valid/hr@10']:.4f} | "
              f"{100 * m['test/free/hallucination']:.3f} % | {entry['summary']['best']['round']} | "
              + " → ".join(f"{r['valid/hr@10']:.4f}" for r in rounds)
              + f" | {final['reward/ranker_score']:.3f} | {100 * final['reward/valid']:.1f} % | "
              f"{gate} | {final['grpo/kl']:.4f} |")


def signed(x: float, digits: int = 5) -> str:
    return f"{x:+.{digits}f}".replace("-", "−")


def interval(p) -> str:
    return f"{signed(p.mean_diff)} [{signed(p.ci_low, 4)}, {signed(p.ci_high, 4)}]"


def mean_sd(values) -> str:
    d = describe(list(values))
    return f"{d.mean:.4f} ± {d.sd:.4f}"


if "--seed" in sys.argv:
    seed_table(int(sys.argv[sys.argv.index("--seed") + 1]))
    raise SystemExit
start = {s: start_value(s) for s in seeds}
value = {c: {s: data.values[c][HR][s] for s in seeds} for c in conditions}
vs_base = {c: paired(value[c], value[spec.baseline]) for c in conditions if c != spec.baseline}
ndcg = {c: paired({s: data.values[c][NDCG][s] for s in seeds},
                  {s: data.values[spec.baseline][NDCG][s] for s in seeds}) for c in vs_base}
# Holm's step-down adjustment over the comparisons with the baseline (no maintained helper
# in scipy.stats; statsmodels is not a dependency): p_(i) · (m − i + 1), made monotone.
ordered = sorted(vs_base, key=lambda c: vs_base[c].t_p)
holm, running = {}, 0.0
for i, c in enumerate(ordered):
    running = max(running, min(1.0, vs_base[c].t_p * (len(ordered) - i)))
    holm[c] = running
popular = data.baselines["most_popular"][HR]

print(f"seeds {seeds}; paired Student t intervals ({len(seeds) - 1} df)\n")
print("| condition | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± sd | paired diff. "
      "to NLL only [95 % CI] | t-test p (Holm) | NDCG@10 paired diff. [95 % CI] | diff. to the "
      "start [95 % CI] |")
print("|---|" + "---|" * (len(seeds) + 5))
print("| the start (SFT) | " + " | ".join(f"{start[s]:.4f}" for s in seeds)
      + f" | {mean_sd(start.values())} | | | | |")
for c in conditions:
    row = f"| {NAMES.get(c, c)} | " + " | ".join(f"{value[c][s]:.4f}" for s in seeds)
    row += f" | {mean_sd(value[c].values())} | "
    if c == spec.baseline:
        row += "– | – | – | "
    else:
        row += (f"{interval(vs_base[c])} | {vs_base[c].t_p:.3f} ({holm[c]:.3f}) | "
                f"{interval(ndcg[c])} | ")
    print(row + f"{interval(paired(value[c], start))} |")
print("| *most popular* | " + " | ".join(f"{popular[s]:.4f}" for s in seeds) + " |" + " |" * 5)
below = sum(value[c][s] < start[s] for c in conditions for s in seeds)
print(f"\n{below} of {len(conditions) * len(seeds)} cells end below their start.\n")
print("| seed | start (SFT) | " + " | ".join(NAMES.get(c, c) for c in conditions)
      + " | most popular |")
print("|---|" + "---|" * (len(conditions) + 2))
for s in seeds:
    print(f"| {s} | {start[s]:.4f} | " + " | ".join(f"{value[c][s]:.4f}" for c in conditions)
          + f" | {popular[s]:.4f} |")

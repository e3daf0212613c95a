"""Tables and PNGs for docs/results/seqgan.md from the experiment JSON files.

    .venv/bin/python experiments/seqgan_report.py

Reads docs/results/seqgan_oracle.json (experiments/seqgan_oracle.py) and
docs/results/seqgan_coco.json (experiments/seqgan_coco.py); writes
docs/results/seqgan_oracle_curves.png, docs/results/seqgan_temperature.png and prints the
markdown tables.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs/results"
REFERENCE_LOG = ROOT / "../shared/data/seqgan_oracle/reference-experiment-log.txt"


def reference_curves() -> tuple[list, list]:
    """(MLE, adversarial) [(epoch, nll)] from the SeqGAN code's published log."""
    mle, adv, current = [], [], None
    if not REFERENCE_LOG.is_file():
        return mle, adv
    for line in REFERENCE_LOG.read_text().splitlines():
        if line.startswith("pre-training"):
            current = mle
        elif line.startswith("adversarial"):
            current = adv
        elif (m := re.match(r"epoch:\s+(\d+)\s+nll:\s+([\d.]+)", line)) and current is not None:
            current.append((int(m.group(1)), float(m.group(2))))
    return mle, adv


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def oracle(data: dict) -> None:
    pre = data["mle_pretrain"]
    curve = pre["curve"]
    runs = data.get("runs", {})
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ref_mle, ref_adv = reference_curves()
    if ref_mle:
        ax1.plot([e + 1 for e, _ in ref_mle], [v for _, v in ref_mle], "k--", lw=1,
                 label="reference code log (GPU, 120 epochs)")
    ax1.plot([c["epoch"] for c in curve], [c["nll_oracle"] for c in curve], "o-",
             label="advx lstm, MLE (this run)")
    ax1.set_xlabel("MLE epoch")
    ax1.set_ylabel("NLL-oracle (nats/token)")
    ax1.set_title("MLE pre-training")
    ax1.legend()
    if ref_adv:
        ax2.plot([e for e, _ in ref_adv], [v for _, v in ref_adv], "k--", lw=1,
                 label="reference code log (N=16, d 5x3 on 20k)")
    for seed, run in runs.items():
        rounds = [r for r in run["seqgan"]["rounds"] if r.get("evaluated")]
        ax2.plot([r["round"] for r in rounds], [r["nll_oracle"] for r in rounds], "o-",
                 label=f"advx SeqGAN seed {seed}")
        ax2.axhline(run["mle"]["final"]["nll_oracle"], ls=":", color=ax2.lines[-1].get_color(),
                    lw=1)
    ax2.set_xlabel("adversarial batch (g-step)")
    ax2.set_title("adversarial training (dotted: MLE +1 epoch, same seed)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "seqgan_oracle_curves.png", dpi=110)

    print("\n### Oracle Table 1 (NLL-oracle, nats/token; lower is better)\n")
    random_nll = curve[0]["nll_oracle"]
    mle_pre = curve[-1]["nll_oracle"]
    def finals(method: str, key: str) -> list[float]:
        return [r[method]["final"][key] for r in runs.values()]

    best = [min(x["nll_oracle"] for x in r["seqgan"]["rounds"] if x.get("evaluated"))
            for r in runs.values()]
    print("| | paper NLL-oracle | advx NLL-oracle | advx NLL-test |\n|---|---|---|---|")
    print(f"| random generator | 10.310 | {random_nll:.3f} | {curve[0]['nll_test']:.3f} |")
    print(f"| MLE pre-training ({len(curve) - 1} epochs, shared start) | – | {mle_pre:.3f} | "
          f"{curve[-1]['nll_test']:.3f} |")
    print(f"| MLE (+{data['config']['mle_extra']} epoch) | 9.038 | "
          f"{mean_sd(finals('mle', 'nll_oracle'))} | {mean_sd(finals('mle', 'nll_test'))} |")
    print(f"| SeqGAN (+{data['config']['rounds']} adversarial batches), final | 8.736 | "
          f"{mean_sd(finals('seqgan', 'nll_oracle'))} | "
          f"{mean_sd(finals('seqgan', 'nll_test'))} |")
    print(f"| SeqGAN, best evaluated round | – | {mean_sd(best)} | – |")
    extra_path = RESULTS / "seqgan_oracle_extra.json"
    if extra_path.is_file():
        extra = json.loads(extra_path.read_text())
        if "reinforce_batch_mean" in extra:
            f = extra["reinforce_batch_mean"]["final"]
            print(f"| REINFORCE + batch-mean baseline (+{extra['config']['rounds']} batches, "
                  f"seed 0) | – | {f['nll_oracle']:.3f} | {f['nll_test']:.3f} |")
        if "mle_long" in extra:
            f = extra["mle_long"]["final"]
            print(f"| MLE (+{extra['mle_long']['epochs_extra']} epochs, seed 0) | – | "
                  f"{f['nll_oracle']:.3f} | {f['nll_test']:.3f} |")
    from15_path = RESULTS / "seqgan_oracle_from15.json"
    if from15_path.is_file():
        late = json.loads(from15_path.read_text())["runs"]

        def late_finals(method: str, key: str) -> list[float]:
            return [r[method]["final"][key] for r in late.values()]

        print(f"| from the 15-epoch MLE (seeds {', '.join(late)}): MLE +1 epoch | – | "
              f"{mean_sd(late_finals('mle', 'nll_oracle'))} | "
              f"{mean_sd(late_finals('mle', 'nll_test'))} |")
        print("| from the 15-epoch MLE: SeqGAN +20 batches | – | "
              f"{mean_sd(late_finals('seqgan', 'nll_oracle'))} | "
              f"{mean_sd(late_finals('seqgan', 'nll_test'))} |")
        for seed, run in late.items():
            rounds = [r for r in run["seqgan"]["rounds"] if r.get("evaluated")]
            ax2.plot([r["round"] for r in rounds], [r["nll_oracle"] for r in rounds], "s--",
                     label=f"SeqGAN from 15-epoch MLE, seed {seed}")
        ax2.legend(fontsize=7)
        fig.savefig(RESULTS / "seqgan_oracle_curves.png", dpi=110)
    print(f"\nseeds: {list(runs)}; oracle entropy estimate {pre['oracle_entropy']:.3f}")
    print("\nper-phase wall time (s):")
    print(f"- MLE pre-training: {pre['train_s']:.0f} training, {pre['wall_s']:.0f} with "
          "per-epoch evaluation")
    for seed, run in runs.items():
        rounds = run["seqgan"]["rounds"]
        pretrain_d = rounds[0]["time/round_s"]
        adv = sum(r["time/round_s"] for r in rounds[1:])
        print(f"- seed {seed}: SeqGAN run {run['seqgan']['wall_s']:.0f} (discriminator "
              f"pre-training + eval {pretrain_d:.0f}, adversarial rounds incl. evals {adv:.0f}); "
              f"MLE +1 epoch {run['mle']['wall_s']:.0f}; sweep {run.get('sweep_s', 0):.0f}")


def sweep_points(sweep: dict, x: str, y: str) -> list[tuple[float, float, float]]:
    points = []
    for key, value in sweep.items():
        if key.startswith(x):
            suffix = key[len(x):]
            if suffix and not suffix.startswith("@t"):
                continue
            tau = float(suffix[2:]) if suffix else 1.0
            points.append((tau, value, sweep[f"{y}{suffix}"]))
    return sorted(points)


def temperature(oracle_data: dict | None, coco: dict | None) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    print("\n### Temperature sweeps\n")
    if oracle_data and oracle_data.get("runs"):
        first = next(iter(oracle_data["runs"].values()))
        if "sweep" in first:
            print("| oracle | τ | NLL-oracle | NLL-test |\n|---|---|---|---|")
            sweeps = dict(first["sweep"])
            extra_path = RESULTS / "seqgan_oracle_extra.json"
            if extra_path.is_file():
                extra = json.loads(extra_path.read_text())
                if "sweep" in extra.get("mle_long", {}):
                    label = f"mle +{extra['mle_long']['epochs_extra']} epochs"
                    sweeps[label] = extra["mle_long"]["sweep"]
            from15_path = RESULTS / "seqgan_oracle_from15.json"
            if from15_path.is_file():
                late = json.loads(from15_path.read_text())["runs"].get("0", {})
                if "sweep" in late:
                    sweeps["seqgan from 15-epoch MLE"] = late["sweep"]["seqgan"]
            for method, sweep in sweeps.items():
                pts = sweep_points(sweep, "nll_oracle", "nll_test")
                axes[0].plot([p[1] for p in pts], [p[2] for p in pts], "o-", label=method)
                for tau, a, b in pts:
                    axes[0].annotate(f"{tau:g}", (a, b), fontsize=7)
                    print(f"| {method} | {tau:g} | {a:.3f} | {b:.3f} |")
            axes[0].set_xlabel("NLL-oracle (quality, lower better)")
            axes[0].set_ylabel("NLL-test (diversity/coverage, lower better)")
            axes[0].set_title("oracle: temperature sweep")
            axes[0].legend()
    if coco and "sweep" in coco:
        print("\n| COCO | τ | BLEU-2 | BLEU-4 | self-BLEU-2 | self-BLEU-4 | NLL-test |")
        print("|---|---|---|---|---|---|---|")
        for method, sweep in coco["sweep"].items():
            pts = sweep_points(sweep, "bleu4", "self_bleu4")
            axes[1].plot([p[2] for p in pts], [p[1] for p in pts], "o-", label=method)
            for tau, b4, sb4 in pts:
                axes[1].annotate(f"{tau:g}", (sb4, b4), fontsize=7)
                sfx = "" if tau == 1.0 else f"@t{tau:g}"
                print(f"| {method} | {tau:g} | {sweep['bleu2' + sfx]:.3f} | {b4:.3f} | "
                      f"{sweep['self_bleu2' + sfx]:.3f} | {sb4:.3f} | "
                      f"{sweep['nll_test' + sfx]:.3f} |")
        axes[1].set_xlabel("self-BLEU-4 (lower = more diverse)")
        axes[1].set_ylabel("BLEU-4 vs test (higher = better quality)")
        axes[1].set_title("COCO: temperature sweep")
        axes[1].legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "seqgan_temperature.png", dpi=110)


def coco_table(coco: dict, label: str = "", header: bool = True) -> None:
    if not header:
        _coco_rows(coco, label)
        return
    print("\n### COCO (Texygen): BLEU vs the test set, self-BLEU of the samples\n")
    print("| | BLEU-2 | BLEU-3 | BLEU-4 | BLEU-5 | self-BLEU-2 | self-BLEU-3 | self-BLEU-4 | "
          "self-BLEU-5 | NLL-test |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("| Texygen MLE | .731 | .497 | .305 | .189 | .916 | .769 | .583 | .408 | – |")
    print("| Texygen SeqGAN | .745 | .498 | .294 | .180 | .950 | .840 | .670 | .489 | – |")
    _coco_rows(coco, label)


def _coco_rows(coco: dict, label: str) -> None:
    for method in ("mle", "seqgan"):
        if method not in coco:
            continue
        f = coco[method]["final"]
        cells = [f"{f[f'bleu{n}']:.3f}" for n in (2, 3, 4, 5)]
        cells += [f"{f[f'self_bleu{n}']:.3f}" for n in (2, 3, 4, 5)]
        print(f"| advx {method}{label} | " + " | ".join(cells) + f" | {f['nll_test']:.3f} |")


def main() -> None:
    oracle_data = coco = None
    if (RESULTS / "seqgan_oracle.json").is_file():
        oracle_data = json.loads((RESULTS / "seqgan_oracle.json").read_text())
        if "mle_pretrain" in oracle_data:
            oracle(oracle_data)
    if (RESULTS / "seqgan_coco.json").is_file():
        coco = json.loads((RESULTS / "seqgan_coco.json").read_text())
        coco_table(coco, " (seed 0)")
        more = RESULTS / "seqgan_coco_seed1.json"
        if more.is_file():
            coco_table(json.loads(more.read_text()), " (seed 1)", header=False)
    temperature(oracle_data, coco)


if __name__ == "__main__":
    main()

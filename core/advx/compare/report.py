"""``advx compare show``: the statistics of the finished cells as markdown, and two plots.

Only cells that finished (``done``) count; ``n`` next to every figure says how many seeds are
behind it, so a report made while cells still run is honest about what it rests on.
A metric ``eval:NAME/METRIC`` is read from each done cell's ``evals/NAME.json`` (``advx eval
CELL_RUN_DIR --name NAME ...``) at report time; cells not re-evaluated yet are left out of it.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advx.compare import ledger
from advx.compare.cells import Cell, mixed_starts
from advx.compare.spec import EVAL_PREFIX, START, CompareSpec, eval_metric, tradeoff_points
from advx.results import finite_number
from advx.stats import BOOTSTRAP_MIN_N, describe, mean_ci, paired

__all__ = ["CompareData", "collect", "markdown", "plot_curves", "plot_paired", "plot_tradeoff",
           "tradeoff_table"]


@dataclass
class CompareData:
    """The finished cells' numbers: ``values[condition][metric][seed]`` (final/best record),
    ``by_round[metric][condition][seed][round]`` of the per-round metrics, and
    ``baselines[name][metric][seed]``: the no-training baselines the runs logged beside a
    listed metric (``baseline/<name>/...``, read from the baseline condition's runs)."""

    spec: CompareSpec
    cells: list[Cell]
    starts: list[Cell] = field(default_factory=list)
    """The shared-start cells, when the caller loaded them (which build each seed's cells
    branched from)."""
    values: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    by_round: dict[str, dict[str, dict[int, dict[int, float]]]] = field(default_factory=dict)
    baselines: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)

    @property
    def curves(self) -> dict[str, dict[int, dict[int, float]]]:
        """``curves[condition][seed][round]`` of the primary metric (the plotted curves)."""
        return self.by_round[self.spec.primary]


def collect(spec: CompareSpec, cells: Sequence[Cell]) -> CompareData:
    """The finite values of the done cells (storage metrics, then ``eval:`` files); a cell
    without a finite value of a metric is simply absent from it (``markdown`` names it).
    ``cells`` may include the shared starts (kept apart, in ``starts``)."""
    data = CompareData(spec, [c for c in cells if c.condition != START],
                       [c for c in cells if c.condition == START])
    for condition in spec.conditions:
        data.values[condition] = {m: {} for m in spec.metrics}
    data.by_round = {m: {c: {} for c in spec.conditions} for m in spec.round_metrics}
    for cell in data.cells:
        if cell.state != "done":
            continue
        for metric, value in cell.metrics.items():
            if metric in data.values[cell.condition] and finite_number(value) is not None:
                data.values[cell.condition][metric][cell.seed] = float(value)
        for metric in spec.metrics:
            value = _evaluated(cell, metric)
            if value is not None:
                data.values[cell.condition][metric][cell.seed] = value
        for metric in spec.round_metrics:
            curve = {int(r["round"]): float(r[metric]) for r in cell.rounds
                     if finite_number(r.get(metric)) is not None}
            if curve:
                data.by_round[metric][cell.condition][cell.seed] = curve
        if cell.condition == spec.baseline:
            for name, metric, value in _trivial_baselines(spec, cell):
                data.baselines.setdefault(name, {}).setdefault(metric, {})[cell.seed] = value
    return data


def _trivial_baselines(spec: CompareSpec, cell: Cell) -> list[tuple[str, str, float]]:
    """(name, listed metric, value) of the ``baseline/<name>/<key>`` values a done cell's
    run logged for a listed metric: ``<key>`` is the metric itself (``test/hr@10``, ``bleu2``)
    or, where the run logged none such for that name, the metric without its first namespace
    (``cold/pr_auc`` ↔ ``baseline/word_overlap/pr_auc``). An ``eval:NAME/...`` metric takes
    them from that evaluation's record, the others from summary.json's ``summary`` record."""
    found: list[tuple[str, str, float]] = []
    records: dict[str | None, dict[str, Any]] = {}
    for metric in spec.metrics:
        parsed = eval_metric(metric)
        source, inner = (parsed[0], parsed[1]) if parsed else (None, metric)
        if source not in records:
            records[source] = _record_of(cell, source, spec.summary)
        logged = records[source]
        names = {k.split("/")[1] for k in logged if k.startswith("baseline/") and k.count("/") > 1}
        for name in sorted(names):
            keys = [f"baseline/{name}/{inner}"]
            if "/" in inner:
                keys.append(f"baseline/{name}/{inner.split('/', 1)[1]}")
            value = next((finite_number(logged[k]) for k in keys if k in logged), None)
            if value is not None:
                found.append((name, metric, value))
    return found


NOT_RECORDED = "not recorded"


def code_versions(cells: Sequence[Cell]) -> dict[str, dict[str, int]]:
    """``{condition: {code version: done cells}}`` (``advx <version> git <commit>``, recorded
    by each cell since 2026-12-03; older cells count as ``not recorded``)."""
    versions: dict[str, Counter[str]] = defaultdict(Counter)
    for cell in cells:
        if cell.state == "done" and cell.trial is not None:
            versions[cell.condition][str(cell.trial.user_attrs.get("code") or NOT_RECORDED)] += 1
    return {condition: dict(counts) for condition, counts in versions.items()}


def _record_of(cell: Cell, evaluation: str | None, which: str) -> dict[str, Any]:
    """The metrics of a done cell's ``evals/<evaluation>.json``, or (None) of its
    summary.json ``which`` record; {} when absent or unreadable."""
    if not cell.run_dir:
        return {}
    path = Path(cell.run_dir) / ("summary.json" if evaluation is None else
                                 f"evals/{evaluation}.json")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        record = record.get("metrics") if evaluation is not None else record.get(which)
    except (OSError, ValueError, AttributeError):
        # the run folder is gone (another machine): the ledger's copy, if imported from one
        record = ledger.record(cell.trial, evaluation, which)
    return record if isinstance(record, dict) else {}


def _evaluated(cell: Cell, metric: str) -> float | None:
    """``eval:NAME/METRIC``: the value in the cell's ``evals/NAME.json`` (written by
    ``advx eval RUN --name NAME``), read at report time; None while not evaluated yet."""
    parsed = eval_metric(metric)
    if parsed is None:
        return None
    return finite_number(_record_of(cell, parsed[0], "final").get(parsed[1]))


def _f(value: float) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.4g}"


def _p(value: float) -> str:
    return "–" if not math.isfinite(value) else (f"{value:.3f}" if value >= 0.001 else "<0.001")


def _mean_sd(values: Sequence[float]) -> str:
    s = describe(values)
    if s.n == 0:
        return "– (0)"
    sd = 0.0 if s.sd <= 1e-12 * max(1.0, abs(s.mean)) else s.sd  # equal values, float noise
    return f"{_f(s.mean)} ± {_f(sd)} ({s.n})"


def markdown(data: CompareData) -> str:
    """The report as markdown, printable into docs as it is."""
    spec, lines = data.spec, []
    lines.append(f"## {spec.name}" + (f": {spec.description}" if spec.description else ""))
    lines.append("")
    states: dict[str, int] = {}
    for cell in data.cells:
        states[cell.state] = states.get(cell.state, 0) + 1
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    imported = sum(bool(c.trial and c.trial.user_attrs.get(ledger.LEDGER_ATTR))
                   for c in data.cells)
    if imported:
        counts += f" ({imported} of them read from the ledger `{spec.ledger}`)"
    lines.append(f"{len(data.cells)} cells ({len(spec.conditions)} conditions × "
                 f"{len(spec.seeds)} seeds): {counts}. Values from each run's summary.json "
                 f"`{spec.summary}` record; figures are mean ± sd (n seeds).")
    for seed, groups in mixed_starts([*data.cells, *data.starts]).items():
        lines.append("")
        lines.append(f"**Seed {seed}: its cells branched from {len(groups)} different builds of "
                     f"its shared start** ({' | '.join(groups)}): the start was rebuilt on "
                     "another machine and came out different, so this seed's paired differences "
                     "also hold the builds' difference. `advx compare FILE --redo "
                     "CONDITION:SEED` runs the older ones again from the current build.")
    versions = code_versions(data.cells)
    if len({v for by_condition in versions.values() for v in by_condition} - {NOT_RECORDED}) > 1:
        spread = "; ".join(f"`{condition}`: " + ", ".join(f"{v} ×{n}" for v, n in counts.items())
                           for condition, counts in versions.items())
        lines.append("")
        lines.append(f"**The done cells ran on more than one code version** ({spread}): a "
                     "difference between conditions also holds what changed between those "
                     "commits. `advx compare FILE --redo CONDITION:SEEDS` reruns cells on the "
                     "current code.")
    lines.append("")
    metric_head = " | ".join(f"`{m}`" for m in spec.metrics)
    lines.append(f"| condition | {metric_head} |")
    lines.append("|---|" + "---|" * len(spec.metrics))
    for condition in spec.conditions:
        label = f"{condition} (baseline)" if condition == spec.baseline else condition
        cells = " | ".join(_mean_sd(list(data.values[condition][m].values()))
                           for m in spec.metrics)
        lines.append(f"| {label} | {cells} |")
    for name, metrics in sorted(data.baselines.items()):
        cells = " | ".join(_mean_sd(list(metrics.get(m, {}).values())) if m in metrics else "–"
                           for m in spec.metrics)
        lines.append(f"| *no training: {name}* | {cells} |")
    if data.baselines:
        lines.append("")
        lines.append("*No training* rows: the trivial baselines the runs logged beside each "
                     "metric on the same evaluated units (`baseline/<name>/...`, from the "
                     f"`{spec.baseline}` runs): a condition that does not clear them has not "
                     "learned the task.")
    lines.append("")
    others = [c for c in spec.conditions if c != spec.baseline]
    lines.append(f"Paired difference to `{spec.baseline}` (condition − baseline, per seed, over "
                 "the seeds both finished): mean, 95% bootstrap CI (BCa; Student t, marked "
                 f"(t), for fewer than {BOOTSTRAP_MIN_N} seeds, too few for a bootstrap interval "
                 "to reach 95%), paired t test and Wilcoxon signed-rank test (two-sided p).")
    lines.append("")
    lines.append("| condition | metric | n | mean diff | 95% CI | t p | Wilcoxon p |")
    lines.append("|---|---|---|---|---|---|---|")
    # a metric the baseline has no value of gives no pair (e.g. generator metrics beside a
    # classifier-only baseline): its rows would all read n = 0
    never, missing = _missing_values(data)
    compared = [m for m in spec.metrics if m not in never.get(spec.baseline, [])]
    for condition in others:
        for metric in compared:
            r = paired(data.values[condition][metric], data.values[spec.baseline][metric])
            ci = f"[{_f(r.ci_low)}, {_f(r.ci_high)}]" if math.isfinite(r.ci_low) else "–"
            ci += " (t)" if r.ci_method == "t" else ""
            if r.n >= 2 and not r.ci_method:  # no spread: neither an interval nor a t test
                ci += " (every d equal)"
            lines.append(f"| {condition} | `{metric}` | {r.n} | {_f(r.mean_diff)} | {ci} | "
                         f"{_p(r.t_p)} | {_p(r.w_p)} |")
    lines.append("")
    for metric in spec.round_metrics:
        rounds = _rounds(data, metric)
        if not rounds:
            continue
        lines.append(f"`{metric}` per round, mean ± sd (n seeds):")
        lines.append("")
        lines.append("| round | " + " | ".join(spec.conditions) + " |")
        lines.append("|---|" + "---|" * len(spec.conditions))
        curves = data.by_round[metric]
        for round in rounds:
            row = [_mean_sd([curve[round] for curve in curves[c].values() if round in curve])
                   for c in spec.conditions]
            lines.append(f"| {round} | " + " | ".join(row) + " |")
        lines.append("")
    lines.extend(tradeoff_table(data))
    if never:
        lines.append("Metrics a condition logs in none of its finished cells (its recipe has "
                     "no such quantity, e.g. no generator to evaluate):")
        lines.append("")
        lines.extend(f"- {condition}: " + ", ".join(f"`{m}`" for m in metrics)
                     for condition, metrics in never.items())
        lines.append("")
    if missing:
        lines.append("Finished cells without a finite value, left out of that metric's figures "
                     "(its n counts only the others):")
        lines.append("")
        lines.extend(f"- {condition} seed {seed}: " + ", ".join(f"`{m}`" for m in metrics)
                     for (condition, seed), metrics in missing.items())
        lines.append("")
    failed = [c for c in data.cells if c.state in ("failed", "interrupted")]
    if failed:
        lines.append("Cells not finished:")
        lines.append("")
        for cell in failed:
            why = cell.error
            if not why and cell.trial is not None:
                why = str(cell.trial.user_attrs.get("interrupted", ""))
            lines.append(f"- {cell.condition} seed {cell.seed}: {cell.state}"
                         + (f" ({why})" if why else ""))
        lines.append("")
    return "\n".join(lines)


def _missing_values(data: CompareData) -> tuple[dict[str, list[str]],
                                                 dict[tuple[str, int], list[str]]]:
    """The metrics done cells have no finite value of (a NaN metric, one the run never
    logged, an ``eval:`` one not evaluated yet), so the reader sees why ``n`` is smaller than
    the done cells: condition -> the metrics none of its done cells has (named once, not per
    seed; not an ``eval:`` metric, which may be evaluated later), and (condition, seed) -> the
    others a done cell lacks."""
    done: dict[str, list[int]] = {}
    for cell in data.cells:
        if cell.state == "done":
            done.setdefault(cell.condition, []).append(cell.seed)
    logged = [m for m in data.spec.metrics if not m.startswith(EVAL_PREFIX)]
    never = {condition: absent for condition in done
             if (absent := [m for m in logged if not data.values[condition][m]])}
    missing: dict[tuple[str, int], list[str]] = {}
    for condition, seeds in done.items():
        for seed in seeds:
            absent = [m for m in data.spec.metrics if m not in never.get(condition, [])
                      and seed not in data.values[condition][m]]
            if absent:
                missing[(condition, seed)] = absent
    return never, missing


def _rounds(data: CompareData, metric: str) -> list[int]:
    seen = sorted({r for curves in data.by_round[metric].values() for c in curves.values()
                   for r in c})
    if data.spec.rounds is not None:
        return [r for r in data.spec.rounds if r in seen]
    return seen


def plot_curves(data: CompareData, path: Path) -> Path | None:
    """The primary metric over rounds per condition: mean line and 95% t-interval band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(data.curves.values()):
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for condition, curves in data.curves.items():
        rounds = sorted({r for c in curves.values() for r in c})
        if not rounds:
            continue
        per_round = [[c[r] for c in curves.values() if r in c] for r in rounds]
        means = [describe(v).mean for v in per_round]
        bands = [mean_ci(v) for v in per_round]
        line, = ax.plot(rounds, means, marker="o", label=f"{condition} (n={len(curves)})")
        low = [b[0] if math.isfinite(b[0]) else m for b, m in zip(bands, means, strict=True)]
        high = [b[1] if math.isfinite(b[1]) else m for b, m in zip(bands, means, strict=True)]
        ax.fill_between(rounds, low, high, alpha=0.2, color=line.get_color())
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel(data.spec.primary)
    ax.set_title(f"{data.spec.name}: mean and 95% CI over seeds")
    ax.legend()
    return _save_figure(fig, path)


def plot_paired(data: CompareData, path: Path) -> Path | None:
    """Per seed, a line from its baseline value to its value under each other condition."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = data.spec
    others = [c for c in spec.conditions if c != spec.baseline]
    base = data.values[spec.baseline][spec.primary]
    if not base or not others:
        return None
    fig, axes = plt.subplots(1, len(others), figsize=(3.2 * len(others) + 1, 4.0), squeeze=False)
    for ax, condition in zip(axes[0], others, strict=True):
        values = data.values[condition][spec.primary]
        seeds = sorted(set(values) & set(base))
        for seed in seeds:
            ax.plot([0, 1], [base[seed], values[seed]], marker="o", color="0.4", alpha=0.7)
            ax.annotate(str(seed), (1, values[seed]), textcoords="offset points",
                        xytext=(4, 0), fontsize=7)
        ax.set_xticks([0, 1], [spec.baseline, condition])
        ax.set_xlim(-0.3, 1.3)
        ax.set_title(f"n={len(seeds)} paired seeds", fontsize=9)
        ax.set_ylabel(spec.primary)
    fig.suptitle(f"{spec.name}: {spec.primary} per seed")
    return _save_figure(fig, path)


def _tradeoff_series(data: CompareData) -> dict[str, list[tuple[str, list[float], list[float]]]]:
    """condition -> [(temperature label, quality values, diversity values)] over the seeds
    that have both, for the compare file's ``tradeoff: [QUALITY, DIVERSITY]``."""
    assert data.spec.tradeoff is not None
    quality, diversity = data.spec.tradeoff
    q_at = tradeoff_points(quality, data.spec.metrics)
    d_at = tradeoff_points(diversity, data.spec.metrics)
    series: dict[str, list[tuple[str, list[float], list[float]]]] = {}
    for condition in data.spec.conditions:
        rows = []
        for label in q_at:
            qs, ds = data.values[condition][q_at[label]], data.values[condition][d_at[label]]
            seeds = sorted(set(qs) & set(ds))
            if seeds:
                rows.append((label, [qs[s] for s in seeds], [ds[s] for s in seeds]))
        series[condition] = rows
    return series


def tradeoff_table(data: CompareData) -> list[str]:
    """Markdown lines: quality and diversity per condition and sampling temperature (the
    quality–diversity trade-off a single temperature hides), or nothing without ``tradeoff``."""
    if data.spec.tradeoff is None:
        return []
    quality, diversity = data.spec.tradeoff
    lines = [f"Quality (`{quality}`) vs diversity (`{diversity}`) per sampling temperature, "
             "mean ± sd (n seeds); `default` is the recipe's own temperature:", "",
             f"| condition | temperature | `{quality}` | `{diversity}` |", "|---|---|---|---|"]
    for condition, rows in _tradeoff_series(data).items():
        lines.extend(f"| {condition} | {label} | {_mean_sd(q)} | {_mean_sd(d)} |"
                     for label, q, d in rows)
    return [*lines, ""]


def plot_tradeoff(data: CompareData, path: Path) -> Path | None:
    """Quality (y) against diversity (x), one line per condition through its temperatures
    (means over seeds; each point labelled with its temperature)."""
    if data.spec.tradeoff is None:
        return None
    series = _tradeoff_series(data)
    if not any(series.values()):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quality, diversity = data.spec.tradeoff
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for condition, rows in series.items():
        points = sorted((describe(d).mean, describe(q).mean, label) for label, q, d in rows)
        if not points:
            continue
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=condition)
        for x, y, label in points:
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.set_xlabel(f"{diversity} (mean over seeds)")
    ax.set_ylabel(f"{quality} (mean over seeds)")
    ax.set_title(f"{data.spec.name}: quality vs diversity over sampling temperatures")
    ax.legend()
    return _save_figure(fig, path)


def _save_figure(fig: Any, path: Path) -> Path:
    """Lay out, write (creating the folder) and close a report figure; its path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

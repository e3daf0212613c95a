"""Reporting (``advx sweep show``): read a study back: table, best parameters, plots, best recipe.

Plots are Optuna's own matplotlib visualisations (optimisation history, parameter
importances, a contour of two parameters); the best configuration is written as a complete
recipe (the sweep's recipe with its fixed overrides, as stored in the study, plus the best
trial's values) that ``advx run`` accepts.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from advx.errors import ConfigError
from advx.rundir import atomic_write_text
from advx.sweep.spec import load_sweep
from advx.sweep.storage import default_storage_url, make_storage, safe_url, sqlite_path

__all__ = ["export_best_recipe", "load_study", "show_study", "write_plots"]

console = Console(soft_wrap=True, highlight=False)


def load_study(study: str, storage: str | None = None,
               runs_root: Path = Path("runs")) -> optuna.Study:
    """The study named ``study`` (or named by the sweep file ``study``) from its storage."""
    name = study
    if study.endswith((".yaml", ".yml")) and Path(study).is_file():
        spec = load_sweep(study)
        name, storage = spec.name, storage or spec.storage
    if storage is None:
        storage = default_storage_url(name, runs_root)
        db = sqlite_path(storage)
        if db is None or not db.is_file():
            raise ConfigError(
                f"no study database at {db}: run `advx sweep <file>` first, or pass "
                "--storage URL for a study kept elsewhere (e.g. PostgreSQL)"
            )
    backend = make_storage(storage)
    try:
        names = [s.study_name for s in optuna.get_all_study_summaries(backend)]
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(f"cannot read the studies in {safe_url(storage)}: {reason}") from exc
    if name not in names:
        raise ConfigError(f"no study {name!r} in {safe_url(storage)}; studies there: "
                          f"{', '.join(names) or 'none'}")
    return optuna.load_study(study_name=name, storage=backend)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return "-" if value is None else str(value)


def trials_table(study: optuna.Study) -> Table:
    """One row per trial: number, state, value, parameters, duration, run directory."""
    trials = study.get_trials(deepcopy=False)
    params = sorted({p for t in trials for p in t.params})
    metric = study.user_attrs.get("objective", {}).get("metric", "value")
    table = Table(title=f"study {study.study_name} ({study.direction.name.lower()} {metric})")
    for column in ("#", "state", metric, *params, "seconds"):
        table.add_column(column, no_wrap=True)
    table.add_column("run dir / error", overflow="fold")
    best = _best(study)
    styles = {TrialState.FAIL: "red", TrialState.PRUNED: "yellow", TrialState.RUNNING: "cyan"}
    for t in trials:
        seconds = t.duration.total_seconds() if t.duration else None
        note = t.user_attrs.get("error") if t.state == TrialState.FAIL else None
        where = _short(t.user_attrs.get("run_dir", ""))
        style = "bold green" if best is not None and t.number == best.number else \
            styles.get(t.state)
        table.add_row(
            str(t.number), t.state.name.lower(), _fmt(t.value),
            *[Text(_fmt(t.params.get(p))) for p in params], _fmt(seconds),
            Text(note or where), style=style,  # Text: an error message is not markup
        )
    return table


def _short(path: str) -> str:
    """A run directory relative to the working directory when it lies below it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _best(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:
        return None


def export_best_recipe(study: optuna.Study, path: Path) -> Path:
    """Write the best trial's configuration as a complete recipe YAML."""
    best = _best(study)
    if best is None:
        raise ConfigError(f"study {study.study_name!r} has no complete trial to export")
    base = study.user_attrs.get("base_recipe")
    if base is None:
        raise ConfigError(f"study {study.study_name!r} was not created by `advx sweep` "
                          "(no base_recipe attribute): cannot export a recipe")
    cfg = OmegaConf.create(base)
    for key, value in best.params.items():
        OmegaConf.update(cfg, key, value, force_add=True)
    metric = study.user_attrs.get("objective", {}).get("metric", "value")
    cfg.description = (f"best of sweep {study.study_name}: trial {best.number}, "
                       f"{metric}={best.value:.4g}")
    params = ", ".join(f"{k}={v}" for k, v in best.params.items())
    header = f"# exported by `advx sweep show {study.study_name}`: {params}\n"
    atomic_write_text(path, header + OmegaConf.to_yaml(cfg))  # a reader never sees half a file
    return path


def write_plots(study: optuna.Study, out: Path, contour: tuple[str, str] | None = None) -> dict:
    """History, importances and contour PNGs; returns {name: path or the reason it is absent}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    out.mkdir(parents=True, exist_ok=True)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    params = list(dict.fromkeys(p for t in complete for p in t.params))
    pair = contour or (tuple(params[:2]) if len(params) >= 2 else None)
    jobs = {
        "history": lambda: ovm.plot_optimization_history(study),
        "importances": lambda: ovm.plot_param_importances(study),
        "contour": lambda: ovm.plot_contour(study, params=list(pair)),
    }
    why_not = {
        "importances": "needs at least 2 complete trials" if len(complete) < 2 else None,
        "contour": ("needs two parameters" if pair is None else
                    "needs at least 2 complete trials" if len(complete) < 2 else None),
        "history": "needs at least 1 complete trial" if not complete else None,
    }
    written: dict[str, Path | str] = {}
    for name, plot in jobs.items():
        if why_not[name]:
            written[name] = why_not[name]
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ax = plot()
            except (ValueError, RuntimeError) as exc:  # e.g. a parameter with one value
                written[name] = f"{type(exc).__name__}: {exc}"
                continue
        fig = ax.flatten()[0].figure if hasattr(ax, "flatten") else ax.figure
        fig.set_size_inches(8, 6)
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", dpi=100)
        plt.close(fig)
        written[name] = out / f"{name}.png"
    return written


def show_study(study: str, storage: str | None = None, out: Path | None = None,
               plots: bool = True, contour: str | None = None,
               runs_root: Path = Path("runs")) -> dict[str, Any]:
    """Print the table and best parameters; write plots and ``best.yaml`` under ``out``."""
    loaded = load_study(study, storage, runs_root)
    out = out or Path(runs_root) / "sweeps" / loaded.study_name
    console.print(trials_table(loaded))
    best = _best(loaded)
    written: dict[str, Any] = {}
    if best is None:
        console.print("no complete trial yet: no best parameters, plots or recipe")
        return written
    console.print(Text.assemble(("best", "bold"), f": trial {best.number}, value {best.value:.6g}"))
    for key, value in best.params.items():
        console.print(f"  {key} = {_fmt(value)}", markup=False)
    if best.user_attrs.get("run_dir"):
        console.print(f"  run dir: {best.user_attrs['run_dir']} "
                      f"(host {best.user_attrs.get('host', '?')})", markup=False)
    written["best_recipe"] = export_best_recipe(loaded, out / "best.yaml")
    console.print(f"best recipe: {written['best_recipe']}  (advx run {written['best_recipe']})",
                  markup=False)
    if plots:
        pair = None
        if contour:
            parts = [p.strip() for p in contour.split(",") if p.strip()]
            if len(parts) != 2:
                raise ConfigError(f"--contour: expected two parameters a,b; got {contour!r}")
            pair = (parts[0], parts[1])
        for name, result in write_plots(loaded, out, pair).items():
            written[name] = result
            console.print(f"{name} plot: {result}" if isinstance(result, Path)
                          else f"{name} plot: not written ({result})", markup=False)
    return written

"""The ``advx`` command line: run, plugins, recipes, eval, export, generate, predict, sweep
(run, show), compare (run, show).

A user error (:class:`advx.errors.AdvxError`) anywhere below prints one message and exits
with code 2, without a traceback; any other exception is a bug and keeps its traceback.
Messages are printed literally: user text (paths, values, keys) is never read as markup.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from advx import __version__
from advx.errors import AdvxError, print_error
from advx.plugins import get_plugin_manager, get_registry
from advx.recipe import recipe_description

__all__ = ["app", "compare_app", "main", "print_error", "sweep_app"]

RUNS = Path("runs")


class AdvxGroup(TyperGroup):
    """Turns user errors into one line on stderr and exit code 2 (for every sub-command)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AdvxError as exc:
            print_error(exc)
            raise typer.Exit(code=exc.exit_code) from None


app = typer.Typer(
    cls=AdvxGroup,
    name="advx",
    help="RL-driven adversarial text generation: run recipes of plugin components.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

def _version(value: bool) -> None:
    if value:
        typer.echo(f"advx {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    """RL-driven adversarial text generation: run recipes of plugin components."""


@app.command()
def run(
    recipe: Annotated[
        str | None,
        typer.Argument(help="Recipe YAML file (omit with --resume).", show_default=False),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="key=value overrides, e.g. reward.alpha=0.5 loop.rounds=2",
                       show_default=False),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", help="Continue this run directory after its last checkpoint."),
    ] = None,
    runs_root: Annotated[
        Path, typer.Option("--runs-root", help="Runs go to RUNS_ROOT/<recipe>/<timestamp>/.")
    ] = Path("runs"),
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="Write exactly into this directory.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    start_from: Annotated[str | None, typer.Option(
        "--from", help="RUN_DIR[:ROUND|:best]: start a new run from that run's checkpoint "
        "(pre-training skipped; docs/architecture.md).")] = None,
) -> None:
    """Run RECIPE (or --resume RUN_DIR) and print where the run wrote.

    Exit codes: 0 done, 1 a bug (traceback), 2 a user error (one message), 130 interrupted
    by Ctrl-C, 143 by SIGTERM (docs/reliability.md).
    """
    from advx.progress import RichProgress
    from advx.runner import Terminated, run_recipe

    extra = list(overrides or [])
    if resume is not None and run_dir is not None:
        raise AdvxError("--run-dir and --resume exclude each other: --resume continues the "
                        "run in its own folder")
    if resume is not None and recipe is not None:
        if "=" not in recipe:
            raise AdvxError("with --resume, give no recipe: the run's own recipe.yaml is used "
                            "(key=value overrides are allowed)")
        extra.insert(0, recipe)
        recipe = None
    if resume is None and recipe is None:
        raise AdvxError("missing RECIPE: `advx run recipes/<name>.yaml [key=value ...]` "
                        "(see `advx recipes`), or `advx run --resume RUN_DIR`")
    if recipe is not None and not Path(recipe).exists():  # `advx run ppo_cls_loss` works too
        named = Path("recipes") / f"{recipe}.yaml"
        recipe = str(named) if named.is_file() else recipe
    main_process = int(os.environ.get("RANK", "0")) == 0  # data-parallel: one display
    progress = [] if quiet or not main_process else [RichProgress()]
    try:
        result = run_recipe(recipe, extra, runs_root=runs_root, run_dir=run_dir,
                            resume=resume, plugins=progress, start_from=start_from,
                            quiet=quiet)
    except KeyboardInterrupt as exc:
        signal_name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        Console(stderr=True).print(
            f"interrupted ({signal_name}): summary.json says so; continue from the last "
            "checkpoint with `advx run --resume RUN_DIR`", highlight=False, markup=False)
        raise typer.Exit(code=143 if isinstance(exc, Terminated) else 130) from None
    finally:
        for display in progress:
            display.close()
    if not main_process:
        return
    console = Console(soft_wrap=True)
    console.print(f"run directory: {result.run_dir}", highlight=False, markup=False)
    best = result.summary.get("best") or {}
    keys = result.summary.get("eval_keys") or [k for k in best if "/" in k]
    shown = {k: best[k] for k in keys if k in best and not k.startswith("time/")}
    if shown:
        label = f"best by {result.summary['monitor']}" if result.summary.get("monitor") else "final"
        model, baselines = _summary_parts(shown)
        console.print(f"{label} (round {best.get('round')}): {model}", highlight=False,
                      markup=False)
        if baselines:
            console.print(f"baselines (same evaluation, no training): {baselines}",
                          highlight=False, markup=False)


def _summary_parts(metrics: dict[str, Any]) -> tuple[str, str]:
    """("k=v±se ..." of the model's metrics, the same of the ``baseline/...`` ones): a
    ``<k>_se`` is shown as ±, ``<k>_resolvable`` is left to metrics.jsonl."""
    def shown(keys: list[str]) -> str:
        parts = []
        for k in keys:
            v, se = metrics[k], metrics.get(f"{k}_se")
            if not isinstance(v, (int, float)):
                continue
            spread = f"±{se:.2g}" if isinstance(se, (int, float)) and se == se else ""
            parts.append(f"{k.removeprefix('baseline/')}={v:.4g}{spread}")
        return "  ".join(parts)

    keys = [k for k in metrics if not k.endswith(("_se", "_resolvable"))]
    model = [k for k in keys if not k.startswith("baseline/")]
    return shown(model), shown([k for k in keys if k.startswith("baseline/")])


@app.command()
def plugins() -> None:
    """List every registered component by kind, with the plugin and distribution it comes from."""
    pm = get_plugin_manager()
    registry = get_registry(pm)
    table = Table(title="advx components")
    for column in ("kind", "name", "config", "plugin", "distribution"):
        table.add_column(column)
    for spec in registry.specs():
        table.add_row(*(Text(cell) for cell in (spec.kind, spec.name, spec.config_class.__name__,
                                                spec.plugin, spec.distribution)))
    console = Console(width=200)
    console.print(table)
    names = sorted(name for name, _ in pm.list_name_plugin())
    console.print(f"plugins loaded: {', '.join(names) or 'none'}", highlight=False, markup=False)


@app.command()
def recipes(
    directory: Annotated[
        Path, typer.Option("--dir", help="Folder of recipe YAML files.")
    ] = Path("recipes"),
) -> None:
    """List the recipes in recipes/ with their one-line description."""
    if not directory.is_dir():
        raise AdvxError(f"recipe folder not found: {directory}")
    files = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
    table = Table(title=f"recipes in {directory}")
    table.add_column("recipe")
    table.add_column("description")
    for path in files:
        table.add_row(Text(str(path)), Text(recipe_description(path)))
    Console(width=200).print(table)
    if not files:
        Console().print(f"no recipes in {directory}", highlight=False, markup=False)


# --------------------------------------------------------------------------- use a run
# (bodies in advx.use; docs/using-models.md)

_RUN_DIR_ARG = typer.Argument(help="A run folder runs/<recipe>/<timestamp>/.", show_default=False)
_ROUND_OPT = typer.Option("--round", help="Checkpoint round N, or 'best' (by loop.monitor); "
                          "default: the newest complete checkpoint.")
_BEST_OPT = typer.Option("--best", help="Same as --round best.")


def _round(round: str | None, best: bool) -> Any:
    """The checkpoint round of --round/--best; also silences Hugging Face's loading bars."""
    from advx.use import parse_round

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()

    if best and round not in (None, "best"):
        raise AdvxError("--best and --round N exclude each other")
    return "best" if best else parse_round(round)


@app.command("eval")
def eval_(
    run_dir: Annotated[Path, _RUN_DIR_ARG],
    overrides: Annotated[list[str] | None, typer.Argument(
        help="Evaluation overrides, e.g. task.eval_temperature=0.7 (keys whose last part "
        "contains 'eval', and device).", show_default=False)] = None,
    round: Annotated[str | None, _ROUND_OPT] = None,
    best: Annotated[bool, _BEST_OPT] = False,
    name: Annotated[str | None, typer.Option(
        help="File name under RUN_DIR/evals/ (default round-<n>-<timestamp>).")] = None,
) -> None:
    """Evaluate a checkpoint again; writes RUN_DIR/evals/<name>.json, nothing else."""
    from advx.use import evaluate_run

    out, record = evaluate_run(run_dir, _round(round, best), overrides or [], name)
    if int(os.environ.get("RANK", "0")) != 0:  # data-parallel: the main process reports
        return
    console = Console(soft_wrap=True)
    console.print(f"round {record['round']}: " + "  ".join(
        f"{k}={v:.4g}" for k, v in record["metrics"].items() if isinstance(v, (int, float))),
        highlight=False, markup=False)
    console.print(f"written: {out}", highlight=False, markup=False)


@app.command()
def export(
    run_dir: Annotated[Path, _RUN_DIR_ARG],
    out: Annotated[Path | None, typer.Option("--out", help="A new folder for the export.")] = None,
    round: Annotated[str | None, _ROUND_OPT] = None,
    best: Annotated[bool, _BEST_OPT] = False,
) -> None:
    """Write the generator and classifier as Hugging Face / safetensors folders."""
    from advx.use import export_run

    if out is None:
        raise AdvxError("missing --out DIR: the folder to export into")
    written = export_run(run_dir, out, _round(round, best))
    for kind, path in written.items():
        Console().print(f"{kind}: {path}", highlight=False, markup=False)


@app.command()
def generate(
    run_dir: Annotated[Path, _RUN_DIR_ARG],
    out: Annotated[Path | None, typer.Option("--out", help="Output FILE.jsonl.")] = None,
    prompts: Annotated[Path | None, typer.Option(
        "--prompts", help="Prompt records: JSONL, or CSV of product fields.")] = None,
    split: Annotated[str | None, typer.Option(
        "--split", help="'cold': the task's cold-start prompts.")] = None,
    n: Annotated[int, typer.Option("--n", help="Samples per prompt.")] = 1,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 1.0,
    candidates: Annotated[int, typer.Option(
        "--candidates", help="Sample K per text and keep the most label-specific by the "
        "generator's own label posterior (1: no selection).")] = 1,
    round: Annotated[str | None, _ROUND_OPT] = None,
    best: Annotated[bool, _BEST_OPT] = False,
) -> None:
    """Generate texts (with log-probs, classifier scores and reward terms) as JSONL."""
    from advx.use import generate as generate_rows

    count = generate_rows(run_dir, out, _round(round, best), prompts, split, n, temperature,
                          candidates)
    Console().print(f"{count} rows written to {out}", highlight=False, markup=False)


@app.command()
def predict(
    run_dir: Annotated[Path, _RUN_DIR_ARG],
    input_file: Annotated[Path | None, typer.Option(
        "--input", help="CSV with a query column and the classifier's input fields.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output FILE.csv.")] = None,
    round: Annotated[str | None, _ROUND_OPT] = None,
    best: Annotated[bool, _BEST_OPT] = False,
) -> None:
    """Class probabilities for each row of a CSV, from the run's classifier."""
    from advx.use import predict as predict_rows

    if input_file is None:
        raise AdvxError("missing --input FILE.csv")
    count = predict_rows(run_dir, input_file, out, _round(round, best))
    Console().print(f"{count} rows written to {out}", highlight=False, markup=False)


# --------------------------------------------------------------------------- advx sweep


class _DefaultRunGroup(AdvxGroup):
    """``advx sweep FILE ...`` means ``advx sweep run FILE ...`` (likewise ``advx compare``).
    An AdvxGroup itself, so that ``python -m advx.sweep`` (which invokes this group directly)
    reports errors the same way."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


sweep_app = typer.Typer(
    cls=_DefaultRunGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Optuna sweeps over recipe keys.\n\n"
    "advx sweep SWEEP_FILE [KEY=VALUE...] [--storage URL] [--workers N] [--n-trials N] "
    "runs or continues a sweep (short for `advx sweep run ...`); "
    "advx sweep show STUDY prints its trials, plots them and exports the best recipe.",
)
app.add_typer(sweep_app, name="sweep")


@sweep_app.command("run")
def sweep_run(
    sweep_file: Annotated[Path, typer.Argument(help="Sweep YAML, e.g. sweeps/alpha_beta.yaml.")],
    overrides: Annotated[list[str] | None, typer.Argument(
        help="Extra fixed key=value overrides for every trial, after the file's own "
        "(e.g. loop.rounds=2 for a quick look).", show_default=False)] = None,
    storage: Annotated[str | None, typer.Option(
        help="Optuna storage URL; default sqlite:///runs/sweeps/<name>.db. Point workers on "
        "many machines at one postgresql://user:pw@host/db to share the study.")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes on this machine.")] = 1,
    n_trials: Annotated[int | None, typer.Option(
        "--n-trials", help="Target number of trials in the study (default: the file's).")] = None,
    runs_root: Annotated[Path, typer.Option(help="Root folder of run directories.")] = RUNS,
) -> None:
    """Run (or continue) the sweep: trials until the study holds n_trials of them.

    Exits with code 2 when every trial of the study failed."""
    from optuna.trial import TrialState

    from advx.sweep import check_not_all_failed, load_sweep, run_sweep, safe_url

    spec = load_sweep(sweep_file)
    if overrides:
        spec = dataclasses.replace(spec, overrides=[*spec.overrides, *overrides])
    result = run_sweep(spec, storage=storage, n_trials=n_trials, workers=workers,
                       runs_root=runs_root)
    console = Console(stderr=True, soft_wrap=True, highlight=False)
    counts = {s.name.lower(): sum(t.state == s for t in result.trials) for s in TrialState}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    console.print(f"study {result.name}: {summary or 'no trials'}", markup=False)
    if result.best is not None:
        console.print(f"best: trial {result.best.number} {spec.objective.metric}="
                      f"{result.best.value:.4g} {result.best.params}", markup=False)
    where = f" --storage {safe_url(result.storage)}" if storage or spec.storage else ""
    console.print(f"inspect: advx sweep show {spec.name}{where}", markup=False)
    check_not_all_failed(result)


@sweep_app.command("show")
def sweep_show(
    study: Annotated[str, typer.Argument(help="Study name, or the sweep file that names it.")],
    storage: Annotated[str | None, typer.Option(
        help="Storage URL (default: the SQLite file runs/sweeps/<study>.db).")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Folder for the PNGs and best.yaml (default runs/sweeps/<study>/).")] = None,
    plots: Annotated[bool, typer.Option(help="Write the PNG plots.")] = True,
    contour: Annotated[str | None, typer.Option(
        help="Two comma-separated parameters for the contour plot (default: the first two "
        "of the space).")] = None,
    runs_root: Annotated[Path, typer.Option(help="Root folder of run directories.")] = RUNS,
) -> None:
    """Table of trials, best parameters, PNG plots and the best recipe as YAML."""
    from advx.sweep.report import show_study

    show_study(study, storage=storage, out=out, plots=plots, contour=contour,
               runs_root=runs_root)



# --------------------------------------------------------------------------- advx compare

compare_app = typer.Typer(
    cls=_DefaultRunGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Conditions × seeds as one resumable study, with paired statistics.\n\n"
    "advx compare FILE [--jobs N] [--storage URL] runs or continues the comparison in "
    "compares/FILE (short for `advx compare run ...`); advx compare show FILE reports it.",
)
app.add_typer(compare_app, name="compare")

_COMPARE_STORAGE_HELP = (
    "Optuna storage URL; default sqlite:///<runs-dir>/compare.db. Point workers on many "
    "machines at one postgresql://user:pw@host/db to share the cells.")
_COMPARE_RUNS_HELP = "Folder of the cells' run folders (default runs/compares/<name>/)."


@compare_app.command("run")
def compare_run(
    compare_file: Annotated[Path, typer.Argument(help="Compare YAML, e.g. compares/x.yaml.")],
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Worker processes here.")] = 1,
    storage: Annotated[str | None, typer.Option(help=_COMPARE_STORAGE_HELP)] = None,
    runs_dir: Annotated[Path | None, typer.Option("--runs-dir", help=_COMPARE_RUNS_HELP)] = None,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Run the cells that failed with an error again.")] = False,
    seeds: Annotated[str | None, typer.Option(
        "--seeds", help="Claim only these seeds' cells, e.g. 0,2,5-9 (the others stay waiting: "
        "for another machine, a later session).")] = None,
    budget: Annotated[str | None, typer.Option(
        "--budget", help="Claim only cells expected to finish within this time from now, e.g. "
        "2h30m (expected: the median time of the condition's done cells). Running cells are "
        "never stopped.")] = None,
    redo: Annotated[str | None, typer.Option(
        "--redo", help="Run these done cells again, e.g. mle:2 or mle:0-2,seqgan:1 (their "
        "results and ledger entries are replaced), e.g. cells that branched from an earlier "
        "build of a rebuilt shared start.")] = None,
    start_threads: Annotated[int | None, typer.Option(
        "--start-threads", help="torch threads of a shared start's run (e.g. 2 with --jobs 2 "
        "and one seed: the other worker waits for that start anyway).")] = None,
) -> None:
    """Run every (condition, seed) cell not done yet; then print the cells' states."""
    import time

    from advx.compare.cells import (
        Limits,
        parse_budget,
        parse_redo,
        parse_seeds,
        run_compare,
        time_left,
    )
    from advx.compare.spec import load_compare

    spec = load_compare(compare_file)
    limits = Limits(seeds=parse_seeds(seeds, spec) if seeds is not None else None,
                    deadline=time.time() + parse_budget(budget) if budget is not None else None)
    result = run_compare(spec, storage=storage, jobs=jobs, runs_dir=runs_dir,
                         retry_failed=retry_failed, limits=limits, start_threads=start_threads,
                         redo=parse_redo(redo, spec) if redo is not None else ())
    console = Console(stderr=True, soft_wrap=True)
    counts = {}
    for cell in result.cells:
        counts[cell.state] = counts.get(cell.state, 0) + 1
    console.print(f"compare {spec.name}: "
                  + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
                  highlight=False, markup=False)
    for cell in result.cells:
        if cell.state == "failed":
            console.print(f"  {cell.condition} seed {cell.seed}: {cell.error}",
                          highlight=False, markup=False)
    if counts.get("failed"):
        console.print("rerun them with --retry-failed once the cause is fixed", highlight=False,
                      markup=False)
    if counts.get("waiting") and (seeds is not None or budget is not None):
        console.print(f"the {counts['waiting']} waiting cell(s) are left by --seeds/--budget: a "
                      "later `advx compare` runs them", highlight=False, markup=False)
    left, seconds, unknown = time_left(spec, [*result.cells, *result.starts])
    if left:
        console.print(f"left: {left} cell(s) (shared starts included), ≈ {seconds / 3600:.1f} "
                      "h of one worker by the median times of the done cells (run + "
                      "re-evaluations)"
                      + (f"; {unknown} of them with no estimate yet (no cell of their condition "
                         "is done)" if unknown else ""), highlight=False, markup=False)
    where = " --storage URL" if storage or spec.storage else ""
    where += f" --runs-dir {runs_dir}" if runs_dir else ""
    console.print(f"report: advx compare show {compare_file}{where}", highlight=False,
                  markup=False)


@compare_app.command("show")
def compare_show(
    compare_file: Annotated[Path, typer.Argument(help="The compare YAML that was run.")],
    out: Annotated[Path | None, typer.Option(
        help="Folder for report.md and the PNGs (default <runs-dir>/report/).")] = None,
    storage: Annotated[str | None, typer.Option(help=_COMPARE_STORAGE_HELP)] = None,
    runs_dir: Annotated[Path | None, typer.Option("--runs-dir", help=_COMPARE_RUNS_HELP)] = None,
    plots: Annotated[bool, typer.Option(help="Write the PNG plots.")] = True,
    baseline: Annotated[str | None, typer.Option(
        help="Pair every condition against this one instead of the file's `baseline` "
             "(e.g. (c) vs (b)); the report goes to <runs-dir>/report-vs-NAME/.")] = None,
) -> None:
    """Print the markdown report of the finished cells (also while others still run) and
    write it with curves.png and paired.png."""
    import dataclasses

    from advx.compare.cells import default_runs_dir, existing_storage, load_cells, storage_url
    from advx.compare.report import collect, markdown, plot_curves, plot_paired, plot_tradeoff
    from advx.compare.spec import load_compare
    from advx.errors import did_you_mean
    from advx.rundir import atomic_write_text

    spec = load_compare(compare_file)
    folder = Path(runs_dir) if runs_dir else default_runs_dir(spec)
    report_dir = "report"
    if baseline is not None and baseline != spec.baseline:
        # Pairing is a reading of the finished cells, not part of the protocol: any condition
        # can be the reference without touching the file (which would change the study).
        if baseline not in spec.conditions:
            raise AdvxError(f"--baseline {baseline!r}: not a condition of {compare_file}; "
                            f"expected one of {', '.join(spec.conditions)}."
                            f"{did_you_mean(baseline, spec.conditions)}")
        spec = dataclasses.replace(spec, baseline=baseline)
        report_dir = f"report-vs-{baseline}"
    url = existing_storage(spec, storage, folder)
    cells = load_cells(spec, url, starts=True)  # url None: the ledger's cells alone
    if url is None and not any(c.trial for c in cells):
        raise AdvxError(f"no cells recorded for {spec.name!r}: "
                        f"{storage_url(spec, storage, folder)} does not exist"
                        + (f" and its ledger {spec.ledger} holds no cell" if spec.ledger
                           else "")
                        + f"; run `advx compare {compare_file}` first (or pass its "
                        "--storage/--runs-dir)")
    data = collect(spec, cells)
    text = markdown(data)
    out = Path(out) if out else folder / report_dir
    atomic_write_text(out / "report.md", text + "\n")
    written = [out / "report.md"]
    if plots:
        written += [p for p in (plot_curves(data, out / "curves.png"),
                                plot_paired(data, out / "paired.png"),
                                plot_tradeoff(data, out / "tradeoff.png")) if p is not None]
    typer.echo(text)
    Console(stderr=True, soft_wrap=True).print(
        "wrote " + ", ".join(str(p) for p in written), highlight=False, markup=False)


def main() -> None:
    """Console-script entry point (``advx``)."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

"""The ``advx`` command line: run, plugins, recipes, sweep (run, show).

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
from advx.compare.cli import compare_app
from advx.errors import AdvxError
from advx.plugins import get_plugin_manager, get_registry
from advx.recipe import recipe_description

__all__ = ["app", "main", "print_error", "sweep_app"]

RUNS = Path("runs")


def print_error(exc: AdvxError | str) -> None:
    """``error: <message>`` on stderr, the message as plain text (a ``[/x]`` in a path or
    value is printed as is, never interpreted as rich markup)."""
    Console(stderr=True, soft_wrap=True, highlight=False).print(
        Text.assemble(("error:", "bold red"), " ", str(exc))
    )


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
    if quiet:  # Hugging Face's download/"Loading weights" bars too (read when it is imported)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        if "transformers" in sys.modules:
            sys.modules["transformers"].utils.logging.disable_progress_bar()
    main_process = int(os.environ.get("RANK", "0")) == 0  # data-parallel: one display
    progress = [] if quiet or not main_process else [RichProgress()]
    try:
        result = run_recipe(recipe, extra, runs_root=runs_root, run_dir=run_dir,
                            resume=resume, plugins=progress)
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
        console.print(f"{label} (round {best.get('round')}): " + "  ".join(
            f"{k}={v:.4g}" for k, v in shown.items() if isinstance(v, (int, float))),
            highlight=False, markup=False)


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


# --------------------------------------------------------------------------- advx sweep


class _DefaultRunGroup(AdvxGroup):
    """``advx sweep FILE ...`` means ``advx sweep run FILE ...``. An AdvxGroup itself, so that
    ``python -m advx.sweep`` (which invokes this group directly) reports errors the same way."""

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
app.add_typer(compare_app, name="compare")


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


def main() -> None:
    """Console-script entry point (``advx``)."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

"""The ``advx`` command line: run, plugins, recipes (and sweep, from advx.sweep).

A user error (:class:`advx.errors.AdvxError`) anywhere below prints one message and exits
with code 2, without a traceback; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from advx import __version__
from advx.compare.cli import compare_app
from advx.errors import AdvxError
from advx.plugins import get_plugin_manager, get_registry
from advx.recipe import recipe_description
from advx.sweep import sweep_app

__all__ = ["app", "main"]


class AdvxGroup(TyperGroup):
    """Turns user errors into one line on stderr and exit code 2 (for every sub-command)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AdvxError as exc:
            Console(stderr=True).print(
                f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True, markup=True
            )
            raise typer.Exit(code=exc.exit_code) from None


app = typer.Typer(
    cls=AdvxGroup,
    name="advx",
    help="RL-driven adversarial text generation: run recipes of plugin components.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(sweep_app, name="sweep")
app.add_typer(compare_app, name="compare")


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
    """Run RECIPE (or --resume RUN_DIR) and print where the run wrote."""
    from advx.loop import NullReporter
    from advx.progress import RichReporter
    from advx.runner import run_recipe

    extra = list(overrides or [])
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
    reporter = NullReporter() if quiet else RichReporter()
    result = run_recipe(recipe, extra, runs_root=runs_root, run_dir=run_dir, resume=resume,
                        reporter=reporter)
    console = Console(soft_wrap=True)
    console.print(f"run directory: {result.run_dir}", highlight=False)
    best = result.summary.get("best") or {}
    keys = result.summary.get("eval_keys") or [k for k in best if "/" in k]
    shown = {k: best[k] for k in keys if k in best and not k.startswith("time/")}
    if shown:
        label = f"best by {result.summary['monitor']}" if result.summary.get("monitor") else "final"
        console.print(f"{label} (round {best.get('round')}): " + "  ".join(
            f"{k}={v:.4g}" for k, v in shown.items() if isinstance(v, (int, float))),
            highlight=False)


@app.command()
def plugins() -> None:
    """List every registered component by kind, with the plugin and distribution it comes from."""
    pm = get_plugin_manager()
    registry = get_registry(pm)
    table = Table(title="advx components")
    for column in ("kind", "name", "config", "plugin", "distribution"):
        table.add_column(column)
    for spec in registry.specs():
        table.add_row(spec.kind, spec.name, spec.config_class.__name__, spec.plugin,
                      spec.distribution)
    console = Console(width=200)
    console.print(table)
    names = sorted(name for name, _ in pm.list_name_plugin())
    console.print(f"plugins loaded: {', '.join(names) or 'none'}", highlight=False)


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
        table.add_row(str(path), recipe_description(path))
    Console(width=200).print(table)
    if not files:
        Console().print(f"no recipes in {directory}", highlight=False)


def main() -> None:
    """Console-script entry point (``advx``)."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

"""The ``advx compare`` commands: ``advx compare FILE`` runs (or continues) a comparison,
``advx compare show FILE`` reports it. Registered in :mod:`advx.cli` as a sub-app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from advx.errors import AdvxError

__all__ = ["compare_app"]


class _CompareGroup(TyperGroup):
    """``advx compare FILE`` means ``advx compare run FILE``. User errors are printed by the
    main app's group (:class:`advx.cli.AdvxGroup`), the one place that turns them into exit 2."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


compare_app = typer.Typer(
    cls=_CompareGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Conditions × seeds as one resumable study, with paired statistics.\n\n"
    "advx compare FILE [--jobs N] [--storage URL] runs or continues the comparison in "
    "compares/FILE (short for `advx compare run ...`); advx compare show FILE reports it.",
)

_STORAGE_HELP = ("Optuna storage URL; default sqlite:///<runs-dir>/compare.db. Point workers on "
                 "many machines at one postgresql://user:pw@host/db to share the cells.")
_RUNS_HELP = "Folder of the cells' run folders (default runs/compares/<name>/)."


@compare_app.command("run")
def run_command(
    compare_file: Annotated[Path, typer.Argument(help="Compare YAML, e.g. compares/x.yaml.")],
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Worker processes here.")] = 1,
    storage: Annotated[str | None, typer.Option(help=_STORAGE_HELP)] = None,
    runs_dir: Annotated[Path | None, typer.Option("--runs-dir", help=_RUNS_HELP)] = None,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Run the cells that failed with an error again.")] = False,
) -> None:
    """Run every (condition, seed) cell not done yet; then print the cells' states."""
    from advx.compare.cells import run_compare
    from advx.compare.spec import load_compare

    spec = load_compare(compare_file)
    result = run_compare(spec, storage=storage, jobs=jobs, runs_dir=runs_dir,
                         retry_failed=retry_failed)
    console = Console(stderr=True, soft_wrap=True)
    counts = {}
    for cell in result.cells:
        counts[cell.state] = counts.get(cell.state, 0) + 1
    console.print(f"compare [bold]{spec.name}[/bold]: "
                  + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), highlight=False)
    for cell in result.cells:
        if cell.state == "failed":
            console.print(f"  {escape(cell.condition)} seed {cell.seed}: "
                          f"{escape(cell.error)}", highlight=False)
    if counts.get("failed"):
        console.print("rerun them with --retry-failed once the cause is fixed", highlight=False)
    where = " --storage URL" if storage or spec.storage else ""
    where += f" --runs-dir {runs_dir}" if runs_dir else ""
    console.print(f"report: advx compare show {compare_file}{where}", highlight=False)


@compare_app.command("show")
def show_command(
    compare_file: Annotated[Path, typer.Argument(help="The compare YAML that was run.")],
    out: Annotated[Path | None, typer.Option(
        help="Folder for report.md and the PNGs (default <runs-dir>/report/).")] = None,
    storage: Annotated[str | None, typer.Option(help=_STORAGE_HELP)] = None,
    runs_dir: Annotated[Path | None, typer.Option("--runs-dir", help=_RUNS_HELP)] = None,
    plots: Annotated[bool, typer.Option(help="Write the PNG plots.")] = True,
) -> None:
    """Print the markdown report of the finished cells (also while others still run) and
    write it with curves.png and paired.png."""
    from advx.compare.cells import default_runs_dir, load_cells, storage_url
    from advx.compare.report import collect, markdown, plot_curves, plot_paired
    from advx.compare.spec import load_compare
    from advx.rundir import atomic_write_text

    spec = load_compare(compare_file)
    folder = Path(runs_dir) if runs_dir else default_runs_dir(spec)
    url = storage_url(spec, storage, folder)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise AdvxError(f"no cells recorded for {spec.name!r}: {url} does not exist; run "
                        f"`advx compare {compare_file}` first (or pass its --storage/--runs-dir)")
    data = collect(spec, load_cells(spec, url))
    text = markdown(data)
    out = Path(out) if out else folder / "report"
    atomic_write_text(out / "report.md", text + "\n")
    written = [out / "report.md"]
    if plots:
        written += [p for p in (plot_curves(data, out / "curves.png"),
                                plot_paired(data, out / "paired.png")) if p is not None]
    typer.echo(text)
    Console(stderr=True, soft_wrap=True).print(
        "wrote " + ", ".join(str(p) for p in written), highlight=False)

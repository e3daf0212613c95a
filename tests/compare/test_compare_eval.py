"""``metrics: [eval:NAME/METRIC]``: ``advx compare show`` reads each cell's re-evaluation
(``advx eval CELL --name NAME``) and pairs it like any other metric."""

from __future__ import annotations

import pytest
from advx.cli import app
from advx.compare import load_compare, run_compare
from advx.compare.report import collect
from advx.use import evaluate_run
from compare_helpers import write_compare
from compare_toy import score
from typer.testing import CliRunner


def test_show_reports_the_cells_re_evaluations(toy):
    path = write_compare(toy, seeds=2, overrides=["loop.checkpoint=true"],
                         metrics=["toy/score", "eval:shifted/toy/score"])
    spec = load_compare(path)
    assert spec.primary == "toy/score"
    result = run_compare(spec)
    assert all(c.state == "done" for c in result.cells)
    assert "eval:shifted/toy/score" not in result.cells[0].metrics  # unknown when a cell ends

    shown = CliRunner().invoke(app, ["compare", "show", str(path), "--no-plots"])
    assert shown.exit_code == 0, shown.output
    assert "| high | `eval:shifted/toy/score` | 0 |" in shown.output  # nothing evaluated yet

    # re-evaluate the last checkpoint (round 3) of every cell under an evaluation override
    for cell in result.cells:
        evaluate_run(cell.run_dir, overrides=["task.eval_offset=0.5"], name="shifted")
    data = collect(spec, result.cells)
    for cell in result.cells:
        gain = 2.0 if cell.condition == "high" else 1.0
        assert data.values[cell.condition]["eval:shifted/toy/score"][cell.seed] == \
            pytest.approx(score(gain, cell.seed, 3, 3) + 0.5)
    shown = CliRunner().invoke(app, ["compare", "show", str(path), "--no-plots"])
    row = next(line for line in shown.output.splitlines()
               if line.startswith("| high | `eval:shifted/toy/score`"))
    assert row.split("|")[3].strip() == "2" and row.split("|")[4].strip() == "1"


@pytest.mark.parametrize(("changes", "message"), [
    ({"metrics": ["toy/score", "eval:/toy/score"]}, "expected 'eval:NAME/METRIC'"),
    ({"metrics": ["toy/score", "eval:x"]}, "expected 'eval:NAME/METRIC'"),
    ({"metrics": ["toy/score", "eval:x/toy/score"], "primary": "eval:x/toy/score"},
     "primary: 'eval:x/toy/score' is a re-evaluation"),
])
def test_bad_eval_metrics_are_exit_2(toy, changes, message):
    result = CliRunner().invoke(app, ["compare", str(write_compare(toy, **changes))])
    assert result.exit_code == 2 and message in result.output, result.output
    assert result.output.count("error:") == 1

"""``metrics: [eval:NAME/METRIC]``: ``advx compare show`` reads each cell's re-evaluation
(``advx eval CELL --name NAME``) and pairs it like any other metric."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from advx.cli import app
from advx.compare import load_compare, run_compare
from advx.compare.cells import default_runs_dir, evaluate_cell, load_cells, storage_url
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


# --------------------------------------------------------------------------- evaluations:

EVALS = {"shifted": {"round": "final", "overrides": ["task.eval_offset=0.5"]},
         "best": {"round": "best", "overrides": ["task.eval_offset=0.5"]},
         "r1": {"round": 1}}
CHECKPOINTED = ["loop.checkpoint=true", "loop.keep_checkpoints=4", "loop.monitor=toy/score"]


def _record(cell, name: str) -> dict:
    return json.loads((Path(cell.run_dir) / "evals" / f"{name}.json").read_text())


def test_compare_writes_its_evaluations_and_copies_a_repeated_checkpoint(toy):
    path = write_compare(toy, seeds=2, overrides=CHECKPOINTED, evaluations=EVALS,
                         metrics=["toy/score", "eval:shifted/toy/score", "eval:best/toy/score",
                                  "eval:r1/toy/score"])
    spec = load_compare(path)
    assert spec.evaluations["r1"].round == 1 and spec.evaluations["best"].round == "best"
    result = run_compare(spec)
    assert all(c.state == "done" for c in result.cells)
    copies = 0
    for cell in result.cells:
        gain = 2.0 if cell.condition == "high" else 1.0
        final = _record(cell, "shifted")
        assert final["round"] == 3 and final["requested_round"] == "final"
        assert final["metrics"]["toy/score"] == pytest.approx(score(gain, cell.seed, 3, 3) + 0.5)
        assert _record(cell, "r1")["metrics"]["toy/score"] == \
            pytest.approx(score(gain, cell.seed, 1, 3))
        best_round = max(range(4), key=lambda r: (score(gain, cell.seed, r, 3), -r))
        best = _record(cell, "best")
        assert best["round"] == best_round and best["requested_round"] == "best"
        assert best["metrics"]["toy/score"] == \
            pytest.approx(score(gain, cell.seed, best_round, 3) + 0.5)
        # the best round is the final one: a copy of `shifted`, not a second evaluation
        assert (best.get("same_as") == "shifted") == (best_round == 3)
        copies += best_round == 3
    assert copies  # the toy's curves rise: at least one cell's best is its final round
    data = collect(spec, load_cells(spec, storage_url(spec, None, default_runs_dir(spec))))
    assert len(data.values["high"]["eval:r1/toy/score"]) == 2


def test_evaluations_added_later_are_made_for_the_done_cells_once(toy):
    path = write_compare(toy, seeds=2, overrides=CHECKPOINTED)
    first = run_compare(load_compare(path))
    assert not (Path(first.cells[0].run_dir) / "evals").exists()
    path = write_compare(toy, seeds=2, overrides=CHECKPOINTED,
                         evaluations={"shifted": EVALS["shifted"]})
    again = run_compare(load_compare(path))
    files = [Path(c.run_dir) / "evals" / "shifted.json" for c in again.cells]
    assert all(f.is_file() for f in files)
    stamps = [f.stat().st_mtime_ns for f in files]
    run_compare(load_compare(path))  # nothing missing: nothing evaluated again
    assert [f.stat().st_mtime_ns for f in files] == stamps
    # changing the evaluation's overrides makes the old records stale: they are redone
    path = write_compare(toy, seeds=2, overrides=CHECKPOINTED, evaluations={
        "shifted": {"round": "final", "overrides": ["task.eval_offset=1.5"]}})
    run_compare(load_compare(path))
    assert _record(again.cells[0], "shifted")["overrides"] == ["task.eval_offset=1.5"]


def test_a_failed_evaluation_leaves_the_cell_done_and_is_retried(toy, capsys):
    path = write_compare(toy, seeds=2, overrides=[*CHECKPOINTED[:1], "loop.keep_checkpoints=1"],
                         evaluations={"gone": {"round": 0}})
    result = run_compare(load_compare(path))
    assert all(c.state == "done" for c in result.cells)
    assert not any((Path(c.run_dir) / "evals" / "gone.json").exists() for c in result.cells)
    err = capsys.readouterr().err
    assert "evaluation gone failed (retried by the next `advx compare`)" in err
    assert "no complete checkpoint of round 0" in err


def test_an_evaluation_held_by_a_live_worker_is_left_to_it(toy):
    path = write_compare(toy, seeds=2, overrides=CHECKPOINTED)
    spec = load_compare(path)
    cell = run_compare(spec).cells[0]
    spec = load_compare(write_compare(toy, seeds=2, overrides=CHECKPOINTED,
                                      evaluations={"shifted": EVALS["shifted"]}))
    lock = Path(cell.run_dir) / "evals" / ".shifted.lock"
    lock.parent.mkdir()
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    assert evaluate_cell(spec, Path(cell.run_dir)) == 0  # held by a live process: skipped
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    assert evaluate_cell(spec, Path(cell.run_dir)) == 1  # its owner died: taken over
    assert not lock.exists() and (lock.parent / "shifted.json").is_file()


@pytest.mark.parametrize(("evaluations", "message"), [
    ({"x": {"rounds": 1}}, "evaluations.x: unknown key 'rounds'. Did you mean 'round'?"),
    ({"x": {"round": "last"}}, "evaluations.x.round: expected final, best or a round number"),
    ({"x": {"overrides": ["reward.gain=3"]}},
     "evaluations.x.overrides: reward.gain is not an evaluation key"),
    ({"a/b": {}}, "evaluations.a/b: the name may only hold"),
    (["x"], "evaluations: expected a mapping like"),
])
def test_bad_evaluations_are_exit_2(toy, evaluations, message):
    result = CliRunner().invoke(app, ["compare", str(write_compare(toy,
                                                                   evaluations=evaluations))])
    assert result.exit_code == 2 and message in result.output, result.output
    assert result.output.count("error:") == 1

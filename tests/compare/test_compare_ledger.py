"""``ledger:``: finished cells' numbers in a folder to commit, so a study continues and is
reported on a machine without its ``runs/`` folder (``advx.compare.ledger``)."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest
from advx.cli import app
from advx.compare import load_compare, run_compare
from advx.compare.cells import load_cells
from advx.compare.ledger import cell_file, open_text
from advx.errors import ConfigError
from compare_helpers import evaluated_seeds, write_compare
from typer.testing import CliRunner

START = {"recipe": "toy.yaml", "overrides": ["reward.gain=0.5"]}


def _report(path) -> str:
    shown = CliRunner().invoke(app, ["compare", "show", str(path), "--no-plots"])
    assert shown.exit_code == 0, shown.output
    return shown.output


def test_a_fresh_clone_reports_from_the_ledger_and_runs_only_what_it_lacks(toy):
    marks = toy / "marks"
    path = write_compare(toy, seeds=2, shared_start=START, ledger="ledgers/toy_cmp",
                         ledger_files=["metrics.jsonl"], overrides=[f"task.marker={marks}"])
    first = run_compare(load_compare(path))
    ledger = toy / "ledgers/toy_cmp"
    assert sorted(p.relative_to(ledger).as_posix() for p in ledger.rglob("*.json")) == [
        f"{c}/seed-{s}.json" for c in ("_start", "high", "low") for s in (0, 1)] + ["study.json"]
    # the named run-folder file, gzipped beside the entry (the same bytes on a rewrite)
    copy = ledger / "low/seed-0.files/metrics.jsonl.gz"
    kept = (toy / "runs/compares/toy_cmp/low/seed-0/metrics.jsonl").read_text()
    assert gzip.decompress(copy.read_bytes()).decode() == kept
    packed = copy.read_bytes()
    copy.unlink()
    run_compare(load_compare(path))  # nothing to run; the catch-up writes what is missing
    assert copy.read_bytes() == packed
    entry = json.loads((ledger / "high/seed-1.json").read_text())
    cell = next(c for c in first.cells if (c.condition, c.seed) == ("high", 1))
    assert entry["value"] == cell.trial.value and entry["user_attrs"]["metrics"] == cell.metrics
    assert entry["summary"]["final"]["baseline/floor/score"] == pytest.approx(0.26)
    before = _report(path)

    shutil.rmtree(toy / "runs")  # another machine: a clone of the repository, no runs/
    after = _report(path)
    assert f"4 done (4 of them read from the ledger `{ledger}`)" in after
    # the same tables, baseline rows included
    assert after.replace(f" (4 of them read from the ledger `{ledger}`)", "") == before
    for mark in marks.iterdir():
        mark.unlink()
    low = next(c for c in load_cells(load_compare(path), None)
               if (c.condition, c.seed) == ("low", 0))
    found = cell_file(low.trial, "metrics.jsonl")  # the run folder is gone: the ledger's copy
    assert found == copy and open_text(found) == kept
    grown = run_compare(load_compare(write_compare(
        toy, seeds=3, shared_start=START, ledger="ledgers/toy_cmp",
        ledger_files=["metrics.jsonl"], overrides=[f"task.marker={marks}"])))
    assert all(c.state == "done" for c in [*grown.cells, *grown.starts])
    # only seed 2 ran: its start (gain 0.5) and its two conditions
    assert evaluated_seeds(marks, "0.5") == [2] and evaluated_seeds(marks, "1.0") == [2]
    imported = [c for c in grown.cells if c.seed < 2]
    assert all(c.trial.user_attrs["ledger"].startswith(str(ledger)) for c in imported)
    assert (ledger / "low/seed-2.json").is_file()


def test_a_start_whose_seed_is_unfinished_is_rebuilt_and_a_different_one_is_flagged(toy):
    marks = toy / "marks"
    path = write_compare(toy, seeds=2, shared_start=START, ledger="ledgers/toy_cmp",
                         overrides=[f"task.marker={marks}"])
    run_compare(load_compare(path))
    ledger = toy / "ledgers/toy_cmp"
    shutil.rmtree(toy / "runs")
    (ledger / "high/seed-1.json").unlink()  # seed 1 unfinished when the machine went away
    for mark in marks.iterdir():
        mark.unlink()
    result = run_compare(load_compare(path))
    # seed 1's start ran again (its checkpoint was gone), then only high seed 1
    assert evaluated_seeds(marks, "0.5") == [1] and evaluated_seeds(marks, "2.0") == [1]
    assert evaluated_seeds(marks, "1.0") == []
    start = next(c for c in result.starts if c.seed == 1)
    assert "ledger" not in start.trial.user_attrs  # rebuilt here, the same as recorded
    assert "ledger_differs" not in start.trial.user_attrs
    # ... so it takes over the recorded build's id: its seed's cells count as one build
    recorded = json.loads((ledger / "_start/seed-1.json").read_text())["user_attrs"]
    assert start.trial.user_attrs["start_id"] == recorded["start_id"]
    high = next(c for c in result.cells if (c.condition, c.seed) == ("high", 1))
    assert high.trial.user_attrs["start_id"] == recorded["start_id"]
    assert "different builds" not in _report(path)

    # float noise (the order of reductions) is not a different build
    shutil.rmtree(toy / "runs")
    (ledger / "high/seed-1.json").unlink()
    entry_file = ledger / "_start/seed-1.json"
    entry = json.loads(entry_file.read_text())
    entry["summary"]["final"]["toy/score"] *= 1 + 1e-7
    entry_file.write_text(json.dumps(entry))
    noisy = run_compare(load_compare(path))
    start = next(c for c in noisy.starts if c.seed == 1)
    assert "ledger_differs" not in start.trial.user_attrs

    # a rebuilt start that logs other values than the recorded one is flagged; the entry
    # its seed's finished cells branched from is kept
    shutil.rmtree(toy / "runs")
    (ledger / "high/seed-1.json").unlink()
    entry = json.loads(entry_file.read_text())
    entry["summary"]["final"]["toy/score"] = -1.0
    entry_file.write_text(json.dumps(entry))
    again = run_compare(load_compare(path))
    start = next(c for c in again.starts if c.seed == 1)
    assert "toy/score was -1.0" in start.trial.user_attrs["ledger_differs"]
    assert json.loads(entry_file.read_text())["summary"]["final"]["toy/score"] == -1.0
    # the report says seed 1's cells come from two builds of its start ...
    assert "**Seed 1: its cells branched from 2 different builds of its shared start** (low | " \
           "high)" in _report(path)
    # ... until the older one is run again from the current build; the start's entry is then
    # the rebuilt one
    for mark in marks.iterdir():
        mark.unlink()
    redone = CliRunner().invoke(app, ["compare", "run", str(path), "--redo", "low:1"])
    assert redone.exit_code == 0, redone.output
    assert evaluated_seeds(marks, "1.0") == [1] and evaluated_seeds(marks, "0.5") == []
    assert "different builds" not in _report(path)
    assert json.loads(entry_file.read_text())["summary"]["final"]["toy/score"] != -1.0
    assert "ledger_differs" not in json.loads(entry_file.read_text())["user_attrs"]


def test_redo_runs_done_cells_again_and_replaces_their_entries(toy):
    marks = toy / "marks"
    path = write_compare(toy, seeds=2, ledger="ledgers/toy_cmp",
                         overrides=[f"task.marker={marks}"])
    first = run_compare(load_compare(path))
    entry_file = toy / "ledgers/toy_cmp/high/seed-1.json"
    before = json.loads(entry_file.read_text())["user_attrs"]["run_dir"]
    for mark in marks.iterdir():
        mark.unlink()
    result = CliRunner().invoke(app, ["compare", "run", str(path), "--redo", "high:0-1"])
    assert result.exit_code == 0, result.output
    assert "cell high seed 1: to be run again (--redo)" in result.output
    assert evaluated_seeds(marks, "2.0") == [0, 1] and evaluated_seeds(marks, "1.0") == []
    spec = load_compare(path)
    cells = {(c.condition, c.seed): c for c in load_cells(
        spec, f"sqlite:///{(toy / 'runs/compares/toy_cmp/compare.db').resolve()}")}
    assert all(c.state == "done" for c in cells.values())
    # a new run folder, recorded in the ledger; the same numbers (same seed and recipe)
    assert cells[("high", 1)].run_dir != before
    assert json.loads(entry_file.read_text())["user_attrs"]["run_dir"] == cells[("high", 1)].run_dir
    old = next(c for c in first.cells if (c.condition, c.seed) == ("high", 1))
    assert cells[("high", 1)].metrics == old.metrics
    assert len(load_cells(spec, None)) == 4  # the ledger alone: one entry a cell


@pytest.mark.parametrize("redo, expected", [
    ("_start:0", "a shared start is not redone by itself"),
    ("nope:1", "expected CONDITION:SEEDS with a condition of"),
    ("high:7", "has no seed 7"),
    ("high", "expected CONDITION:SEEDS"),
])
def test_a_bad_redo_option_is_one_message_and_exit_2(toy, redo, expected):
    path = write_compare(toy, seeds=2, shared_start=START)
    result = CliRunner().invoke(app, ["compare", "run", str(path), "--redo", redo])
    assert result.exit_code == 2 and expected in result.output, result.output


def test_the_guard_holds_on_a_fresh_storage_and_a_bad_ledger_key_is_refused(toy):
    path = write_compare(toy, seeds=2, ledger="ledgers/toy_cmp")
    run_compare(load_compare(path))
    shutil.rmtree(toy / "runs")
    recipe = toy / "toy.yaml"
    recipe.write_text(recipe.read_text().replace("gain: 1.0", "gain: 3.0"))
    with pytest.raises(ConfigError, match=r"reward\.gain was 1\.0 when its cells ran"):
        run_compare(load_compare(path))

    with pytest.raises(ConfigError, match="ledger: expected a folder path"):
        load_compare(write_compare(toy, ledger=5))
    with pytest.raises(ConfigError, match="ledger_files: needs a ledger folder"):
        load_compare(write_compare(toy, ledger_files=["metrics.jsonl"]))
    with pytest.raises(ConfigError, match="a file name or glob inside the run folder"):
        load_compare(write_compare(toy, ledger="l", ledger_files=["../secrets.txt"]))
    # no storage and no ledger entry: one clear message
    empty = write_compare(toy, name="empty_cmp", ledger="ledgers/empty")
    shown = CliRunner().invoke(app, ["compare", "show", str(empty)])
    assert shown.exit_code == 2 and "holds no cell" in shown.output
    assert load_cells(load_compare(empty), None) and all(
        c.state == "new" for c in load_cells(load_compare(empty), None))

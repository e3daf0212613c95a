"""``advx compare`` end to end on the toy: cells are real runs, recorded once, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from advx.cli import app
from advx.compare import load_cells, load_compare, run_compare
from advx.compare.cells import Limits, default_runs_dir, storage_url, work
from advx.errors import ConfigError
from advx.results import load_run
from compare_helpers import BASE_COMPARE, compare_worker, kill_when, write_compare
from compare_toy import score
from optuna.trial import TrialState
from typer.testing import CliRunner

BASE_CONDITIONS = BASE_COMPARE["conditions"]


def _cells(path: Path):
    spec = load_compare(path)
    return load_cells(spec, storage_url(spec, None, default_runs_dir(spec)))


def test_two_conditions_three_seeds_end_to_end_with_show(toy):
    path = write_compare(toy)
    result = CliRunner().invoke(app, ["compare", str(path)])
    assert result.exit_code == 0, result.output
    cells = _cells(path)
    assert [(c.condition, c.seed, c.state) for c in cells] == [
        (c, s, "done") for s in range(3) for c in ("low", "high")]
    for cell in cells:
        # each cell is an ordinary run folder, with the seed and condition applied
        run = load_run(cell.run_dir)
        assert Path(cell.run_dir) == (toy / "runs/compares/toy_cmp" / cell.condition
                                      / f"seed-{cell.seed}").resolve()
        assert run.seed == cell.seed and run.status == "complete"
        gain = 2.0 if cell.condition == "high" else 1.0
        assert cell.metrics["toy/score"] == pytest.approx(score(gain, cell.seed, 3, 3))
        assert [r["round"] for r in cell.rounds] == [0, 1, 2, 3]

    shown = CliRunner().invoke(app, ["compare", "show", str(path), "--out", "report"])
    assert shown.exit_code == 0, shown.output
    report = (toy / "report" / "report.md").read_text()
    assert report.strip() in shown.output
    # high - low per seed is exactly gain difference * 4/4 = 1.0 (same noise per seed)
    row = next(line for line in report.splitlines() if line.startswith("| high | `toy/score`"))
    assert row.split("|")[3].strip() == "3" and row.split("|")[4].strip() == "1"
    assert "| low (baseline) |" in report
    assert "| 3 | " in report  # the per-round table reaches round 3
    # the no-training baseline the runs logged beside toy/score (baseline/floor/score), over
    # the seeds: 0.25, 0.26, 0.27; none for toy/gain
    floor = next(line for line in report.splitlines() if line.startswith("| *no training"))
    assert floor.split("|")[1:4] == [" *no training: floor* ", " 0.26 ± 0.01 (3) ", " – "]
    for png in ("curves.png", "paired.png"):
        data = (toy / "report" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000

    # the same cells paired against the other condition: low - high = -1 per seed, in a
    # report folder of its own (the file's report is not overwritten)
    flipped = CliRunner().invoke(app, ["compare", "show", str(path), "--baseline", "high",
                                       "--no-plots"])
    assert flipped.exit_code == 0, flipped.output
    row = next(line for line in flipped.output.splitlines()
               if line.startswith("| low | `toy/score`"))
    assert row.split("|")[4].strip() == "-1" and "| high (baseline) |" in flipped.output
    assert (toy / "runs/compares/toy_cmp/report-vs-high/report.md").is_file()
    typo = CliRunner().invoke(app, ["compare", "show", str(path), "--baseline", "hihg"])
    assert typo.exit_code == 2
    assert "not a condition" in typo.output and "Did you mean 'high'?" in typo.output


def test_a_second_invocation_runs_nothing_and_a_failed_cell_is_retried_on_request(toy):
    (toy / "broken").touch()
    path = write_compare(toy, overrides=["task.fail_seed=1", "task.fail_file=broken"])
    spec = load_compare(path)
    first = run_compare(spec)
    states = {(c.condition, c.seed): c.state for c in first.cells}
    assert states[("low", 1)] == states[("high", 1)] == "failed"
    assert sum(s == "done" for s in states.values()) == 4
    failed = next(c for c in first.cells if c.state == "failed")
    assert "toy task exploded for seed 1" in failed.error

    again = run_compare(spec)  # failed cells stay failed; nothing is rerun
    assert [(c.state, c.trial.number) for c in again.cells] == [
        (c.state, c.trial.number) for c in first.cells]

    (toy / "broken").unlink()  # the cause is fixed
    retried = run_compare(spec, retry_failed=True)
    assert all(c.state == "done" for c in retried.cells)
    again_cells = {(c.condition, c.seed): c for c in retried.cells}
    assert again_cells[("low", 1)].attempts == 2
    assert again_cells[("low", 1)].run_dir.endswith("seed-1.2")
    assert again_cells[("low", 0)].attempts == 1


def test_retrying_a_cell_whose_finished_run_lacked_the_primary_runs_it_again(toy):
    (toy / "broken").touch()
    path = write_compare(toy, overrides=["task.nan_seed=1", "task.fail_file=broken",
                                         "loop.checkpoint=true"])
    spec = load_compare(path)
    first = {(c.condition, c.seed): c for c in run_compare(spec).cells}
    assert first[("low", 1)].state == "failed" and "missing or not finite" in first[
        ("low", 1)].error
    (toy / "broken").unlink()  # the cause is fixed: a rerun gives a finite score
    retried = {(c.condition, c.seed): c for c in run_compare(spec, retry_failed=True).cells}
    cell = retried[("low", 1)]
    assert cell.state == "done" and cell.attempts == 2, cell.error
    assert cell.run_dir.endswith("seed-1.2")  # a fresh run, not the finished one resumed


def test_show_while_cells_are_missing_reports_what_finished(toy):
    path = write_compare(toy, overrides=["task.fail_seed=2"])
    run_compare(load_compare(path))
    shown = CliRunner().invoke(app, ["compare", "show", str(path), "--no-plots"])
    assert shown.exit_code == 0, shown.output
    assert "4 done, 2 failed" in shown.output
    assert "| high | `toy/score` | 2 |" in shown.output
    assert "high seed 2: failed (RuntimeError: toy task exploded for seed 2)" in shown.output


def test_two_workers_on_one_sqlite_storage_never_run_a_cell_twice(toy):
    path = write_compare(toy, seeds=3, overrides=[
        f"task.barrier={toy / 'barrier'}", f"task.marker={toy / 'marks'}", "task.sleep_s=0.05"])
    workers = [compare_worker(toy, path) for _ in range(2)]
    outputs = [w.communicate(timeout=400)[0] for w in workers]
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output
    cells = _cells(path)
    assert all(c.state == "done" and c.attempts == 1 for c in cells), (
        [(c.condition, c.seed, c.state, c.attempts) for c in cells], outputs)
    # exactly once, seen from the runs: one folder per cell, each evaluated once per round
    folders = sorted(p.parent for p in (toy / "runs/compares/toy_cmp").glob("*/*/recipe.yaml"))
    assert folders == sorted(Path(c.run_dir) for c in cells)
    assert len(list((toy / "marks").iterdir())) == len(cells) * 4
    pids = {c.trial.user_attrs["pid"] for c in cells}
    assert len(pids) == 2, outputs  # both workers ran cells


def test_resuming_after_a_kill_reruns_only_the_unfinished_cells(toy):
    marks = toy / "marks"
    path = write_compare(toy, overrides=[f"task.marker={marks}", "task.sleep_s=0.5",
                                         "task.slow_seed=1"])
    # kill it while it runs the third cell (seed 1, condition low)
    kill_when(compare_worker(toy, path), marks / "seed1-gain1.0-round0")
    before = {(c.condition, c.seed): c for c in _cells(path)}
    assert before[("low", 0)].state == before[("high", 0)].state == "done"
    assert before[("low", 1)].state == "running"  # the dead worker's claim

    for mark in marks.iterdir():
        mark.unlink()
    result = run_compare(load_compare(path))
    after = {(c.condition, c.seed): c for c in result.cells}
    assert all(c.state == "done" for c in after.values())
    for key in (("low", 0), ("high", 0)):  # finished cells: same trial, not rerun
        assert after[key].trial.number == before[key].trial.number
    assert after[("low", 1)].attempts == 2
    rerun = sorted(m.name.split("-round")[0] for m in marks.iterdir())
    assert set(rerun) == {"seed1-gain1.0", "seed1-gain2.0", "seed2-gain1.0", "seed2-gain2.0"}
    summary = json.loads((Path(after[("low", 1)].run_dir) / "summary.json").read_text())
    assert summary["status"] == "complete"


def test_a_changed_condition_is_refused_but_new_seeds_and_conditions_are_added(toy):
    run_compare(load_compare(write_compare(toy, seeds=2)))
    changed = write_compare(toy, seeds=2, conditions={
        "low": {"recipe": "toy.yaml"},
        "high": {"recipe": "toy.yaml", "overrides": ["reward.gain=3.0"]}})
    result = CliRunner().invoke(app, ["compare", str(changed)])
    assert result.exit_code == 2
    assert "conditions.high changed since its cells ran" in result.output

    grown = write_compare(toy, seeds=3, conditions={
        **{"low": {"recipe": "toy.yaml"},
           "high": {"recipe": "toy.yaml", "overrides": ["reward.gain=2.0"]}},
        "higher": {"recipe": "toy.yaml", "overrides": ["reward.gain=3.0"]}})
    cells = run_compare(load_compare(grown)).cells
    assert len(cells) == 9 and all(c.state == "done" for c in cells)
    assert sum(c.trial.number < 4 for c in cells) == 4  # the first 4 cells were not rerun


def test_a_worker_on_the_file_before_a_condition_was_added_leaves_its_cells_waiting(toy):
    run_compare(load_compare(write_compare(toy, seeds=2)))
    before = load_compare(write_compare(toy, seeds=2))
    grown = load_compare(write_compare(toy, seeds=2, conditions={
        **BASE_CONDITIONS, "higher": {"recipe": "toy.yaml", "overrides": ["reward.gain=3.0"]}}))
    runs = default_runs_dir(grown)
    url = storage_url(grown, None, runs)
    # the grown file's invocation enqueues its new cells, claiming none (another seed only) ...
    assert work(grown, url, runs, limits=Limits(seeds=frozenset({1}))) == 1
    # ... then a worker still on the file as it was finds nothing of its own to run
    assert work(before, url, runs) == 0
    waiting = [c for c in load_cells(grown, url) if c.condition == "higher"]
    assert [(c.seed, c.state) for c in waiting] == [(0, "waiting"), (1, "done")]
    assert waiting[0].trial.state == TrialState.WAITING
    cells = run_compare(grown).cells
    assert all(c.state == "done" for c in cells)


def test_an_edited_recipe_is_refused_naming_the_key_and_a_study_recorded_before_is_upgraded(
        toy):
    """The recorded definition holds the recipe file's keys: editing the file between two
    invocations would change the cells still to run, so the compare stops and says which key
    changed. A study recorded before (recipe path and overrides only) is accepted once and
    its definitions completed."""
    from advx.compare.cells import RECIPE_KEYS, open_study

    path = write_compare(toy, seeds=2)
    spec = load_compare(path)
    run_compare(spec)
    url = storage_url(spec, None, default_runs_dir(spec))
    study, _ = open_study(spec, url)
    recorded = study.user_attrs["conditions"]
    assert recorded["low"][RECIPE_KEYS]["reward.gain"] == 1.0
    # as a study of the code before recorded it
    study.set_user_attr("conditions", {k: {"recipe": v["recipe"], "overrides": v["overrides"]}
                                       for k, v in recorded.items()})
    study, _ = open_study(spec, url)
    assert RECIPE_KEYS in study.user_attrs["conditions"]["high"]

    recipe = yaml.safe_load((toy / "toy.yaml").read_text())
    recipe["loop"]["rounds"] = 5
    (toy / "toy.yaml").write_text(yaml.safe_dump(recipe))
    result = CliRunner().invoke(app, ["compare", str(path)])
    assert result.exit_code == 2 and result.output.count("error:") == 1, result.output
    assert "conditions.low changed since its cells ran" in result.output
    assert "loop.rounds was 3 when its cells ran, is 5 now (its recipe file toy.yaml" in \
        result.output.replace("\n", " ")


def test_a_recipe_default_every_condition_overrides_may_change(toy):
    """What is compared is what the cells run with (recipe keys, then overrides): changing a
    recipe value that every condition overrides leaves the study valid; a value one condition
    takes from the recipe does not."""
    from advx.compare.cells import open_study

    path = write_compare(toy, seeds=2, conditions={
        "low": {"recipe": "toy.yaml", "overrides": ["reward.gain=1.0"]},
        "high": {"recipe": "toy.yaml", "overrides": ["reward.gain=2.0"]}})
    spec = load_compare(path)
    run_compare(spec)
    url = storage_url(spec, None, default_runs_dir(spec))
    recipe = yaml.safe_load((toy / "toy.yaml").read_text())
    recipe["reward"]["gain"] = 7.0
    (toy / "toy.yaml").write_text(yaml.safe_dump(recipe))
    open_study(spec, url)  # accepted: both conditions set reward.gain themselves

    changed = write_compare(toy, seeds=2, conditions={
        "low": {"recipe": "toy.yaml"},
        "high": {"recipe": "toy.yaml", "overrides": ["reward.gain=2.0"]}})
    with pytest.raises(ConfigError, match=r"conditions\.low changed .*reward\.gain was 1\.0 "
                                          r"when its cells ran, is 7\.0 now"):
        open_study(load_compare(changed), url)


def test_a_preset_default_may_change_when_the_compare_pins_the_value_its_cells_took(toy):
    """A key the recipe left to its component's default (gain 1.0) that the recipe now sets
    (7.0) is no change when the compare file pins the default the cells ran with; without
    the pin the condition that took the default is refused."""
    from advx.compare.cells import open_study

    recipe = yaml.safe_load((toy / "toy.yaml").read_text())
    del recipe["reward"]["gain"]  # the component's default, 1.0
    (toy / "toy.yaml").write_text(yaml.safe_dump(recipe))
    path = write_compare(toy, seeds=2)
    spec = load_compare(path)
    run_compare(spec)
    url = storage_url(spec, None, default_runs_dir(spec))
    recipe["reward"]["gain"] = 7.0  # the preset's new default
    (toy / "toy.yaml").write_text(yaml.safe_dump(recipe))

    pinned = write_compare(toy, seeds=2, overrides=["reward.gain=1.0"])
    open_study(load_compare(pinned), url)  # accepted: every cell runs with what it ran with
    unpinned = write_compare(toy, seeds=2)
    with pytest.raises(ConfigError, match=r"conditions\.low changed .*reward\.gain was absent "
                                          r"when its cells ran, is 7\.0 now"):
        open_study(load_compare(unpinned), url)


def test_an_interrupted_cell_with_a_checkpoint_is_resumed_in_its_folder(toy):
    marks = toy / "marks"
    path = write_compare(toy, seeds=2, overrides=[
        f"task.marker={marks}", "task.sleep_s=0.5", "task.slow_seed=1", "loop.checkpoint=true"])
    # round 2 is being evaluated: rounds 0 and 1 are checkpointed
    kill_when(compare_worker(toy, path), marks / "seed1-gain1.0-round2")
    killed = {(c.condition, c.seed): c for c in _cells(path)}[("low", 1)]
    for mark in marks.iterdir():
        mark.unlink()

    cell = {(c.condition, c.seed): c for c in run_compare(load_compare(path)).cells}[("low", 1)]
    assert cell.state == "done" and cell.attempts == 2
    assert cell.run_dir == killed.run_dir and cell.trial.user_attrs["resumed"] is True
    summary = json.loads((Path(cell.run_dir) / "summary.json").read_text())
    assert summary["resumed_from_round"] >= 1
    rerun = sorted(m.name for m in marks.iterdir() if m.name.startswith("seed1-gain1.0"))
    assert "seed1-gain1.0-round0" not in rerun and "seed1-gain1.0-round3" in rerun
    run = load_run(cell.run_dir)
    assert [r["round"] for r in run.rounds] == [0, 1, 2, 3]

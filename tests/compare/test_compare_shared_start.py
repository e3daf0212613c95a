"""``shared_start``: one start run per seed, every condition of that seed branches from its
checkpoint (``run_recipe(start_from=...)``), recorded and claimed like the other cells."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from advx.compare import load_compare, run_compare
from advx.compare.cells import default_runs_dir, evaluate_cell, load_cells, storage_url
from advx.results import load_run
from compare_helpers import compare_worker, kill_when, write_compare

# The start run has its own gain, so its evaluations leave markers of their own.
START = {"recipe": "toy.yaml", "overrides": ["reward.gain=0.5"]}


def _all_cells(path: Path):
    spec = load_compare(path)
    return load_cells(spec, storage_url(spec, None, default_runs_dir(spec)), starts=True)


def _starts_per_seed(marks: Path) -> dict[int, int]:
    """How often each seed's start run was evaluated at round 0."""
    runs: dict[int, int] = {}
    for mark in marks.iterdir():
        if "-gain0.5-round0" in mark.name:
            seed = int(mark.name.split("-")[0].removeprefix("seed"))
            runs[seed] = runs.get(seed, 0) + 1
    return runs


def test_every_condition_of_a_seed_branches_from_one_start_run(toy):
    marks = toy / "marks"
    path = write_compare(toy, seeds=2, shared_start=START, overrides=[f"task.marker={marks}"])
    result = run_compare(load_compare(path))
    assert [(c.condition, c.seed, c.state) for c in result.cells] == [
        (c, s, "done") for s in range(2) for c in ("low", "high")]
    starts = {c.seed: c for c in result.starts}
    assert sorted(starts) == [0, 1] and all(c.state == "done" for c in starts.values())
    for seed, start in starts.items():  # an ordinary run folder, stopped after round 0
        assert Path(start.run_dir) == (toy / f"runs/compares/toy_cmp/_start/seed-{seed}"
                                       ).resolve()
        run = load_run(start.run_dir)
        assert run.seed == seed and [r["round"] for r in run.rounds] == [0]
    # the start ran once per seed, not once per cell (a marker is written per evaluation)
    assert _starts_per_seed(marks) == {0: 1, 1: 1}
    for cell in result.cells:
        origin = str(Path(starts[cell.seed].run_dir))
        summary = json.loads((Path(cell.run_dir) / "summary.json").read_text())
        assert summary["from"]["run_dir"] == origin and summary["from"]["round"] == 0
        assert (Path(cell.run_dir) / "recipe.yaml").read_text().startswith(f"# from: {origin}")
        assert cell.trial.user_attrs["from"] == f"{origin}:0"
        assert load_run(cell.run_dir).seed == cell.seed
    again = run_compare(load_compare(path))  # nothing left to do
    assert [c.trial.number for c in again.starts] == [c.trial.number for c in result.starts]


def test_a_start_whose_folder_is_gone_is_rebuilt_before_a_new_condition_branches(toy):
    import shutil

    path = write_compare(toy, seeds=2, shared_start=START)
    first = run_compare(load_compare(path))
    shutil.rmtree(next(c for c in first.starts if c.seed == 1).run_dir)  # disk freed
    grown = write_compare(toy, seeds=2, shared_start=START, conditions={
        "low": {"recipe": "toy.yaml"},
        "high": {"recipe": "toy.yaml", "overrides": ["reward.gain=2.0"]},
        "higher": {"recipe": "toy.yaml", "overrides": ["reward.gain=3.0"]}})
    result = run_compare(load_compare(grown))
    assert all(c.state == "done" for c in result.cells)
    starts = {c.seed: c for c in result.starts}
    before = {c.seed: c.trial.number for c in first.starts}
    assert starts[0].trial.number == before[0]  # its folder is there: not rebuilt
    assert starts[1].trial.number != before[1] and Path(starts[1].run_dir).is_dir()
    higher = next(c for c in result.cells if (c.condition, c.seed) == ("higher", 1))
    assert higher.trial.user_attrs["from"] == f"{starts[1].run_dir}:0"


def test_a_failed_start_fails_its_seeds_cells_with_a_message_and_is_retried(toy):
    (toy / "broken").touch()
    path = write_compare(toy, seeds=2, shared_start={
        **START, "overrides": ["reward.gain=0.5", "task.fail_seed=1", "task.fail_file=broken"]})
    result = run_compare(load_compare(path))
    states = {(c.condition, c.seed): c for c in [*result.cells, *result.starts]}
    assert states[("_start", 1)].state == "failed"
    assert "toy task exploded for seed 1" in states[("_start", 1)].error
    for condition in ("low", "high"):
        assert states[(condition, 0)].state == "done"
        cell = states[(condition, 1)]
        assert cell.state == "failed" and cell.run_dir is None  # never ran
        assert "the shared start of seed 1 failed (RuntimeError: toy task exploded" in cell.error
        assert "--retry-failed" in cell.error

    (toy / "broken").unlink()
    retried = run_compare(load_compare(path), retry_failed=True)
    assert all(c.state == "done" for c in [*retried.cells, *retried.starts])
    start = next(c for c in retried.starts if c.seed == 1)
    assert start.attempts == 2 and start.run_dir.endswith("seed-1.2")
    high = next(c for c in retried.cells if c.condition == "high" and c.seed == 1)
    assert high.trial.user_attrs["from"] == f"{start.run_dir}:0"


def test_resuming_after_a_kill_does_not_repeat_a_finished_start(toy):
    marks = toy / "marks"
    path = write_compare(toy, seeds=2, shared_start=START, overrides=[
        f"task.marker={marks}", "task.sleep_s=0.5", "task.slow_seed=1"])
    # kill it while it runs seed 1's first condition cell (its start is done by then)
    kill_when(compare_worker(toy, path), marks / "seed1-gain1.0-round0")
    before = {(c.condition, c.seed): c for c in _all_cells(path)}
    assert before[("_start", 1)].state == "done" and before[("low", 1)].state == "running"
    for mark in marks.iterdir():
        mark.unlink()

    result = run_compare(load_compare(path))
    assert all(c.state == "done" for c in [*result.cells, *result.starts])
    assert _starts_per_seed(marks) == {}  # both starts finished before the kill: not rerun
    low = next(c for c in result.cells if c.condition == "low" and c.seed == 1)
    assert low.attempts == 2
    assert low.trial.user_attrs["from"] == f"{before[('_start', 1)].run_dir}:0"


def test_two_workers_share_the_starts_without_deadlock(toy):
    marks = toy / "marks"
    path = write_compare(toy, seeds=2, shared_start=START, overrides=[
        f"task.barrier={toy / 'barrier'}", f"task.marker={marks}"])
    workers = [compare_worker(toy, path) for _ in range(2)]
    outputs = [w.communicate(timeout=400)[0] for w in workers]
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output
    cells = _all_cells(path)
    assert len(cells) == 6 and all(c.state == "done" and c.attempts == 1 for c in cells), (
        [(c.condition, c.seed, c.state, c.attempts) for c in cells], outputs)
    assert _starts_per_seed(marks) == {0: 1, 1: 1}


def test_an_evaluation_of_the_start_checkpoint_is_made_once_per_seed_and_copied(toy):
    """A re-evaluation that names the checkpoint a cell branched from (here round 0) is made
    once per seed, in the start's folder, and copied into every cell whose round 0 is that
    checkpoint evaluated the same way; a condition that evaluates differently (the toy's
    score reads reward.gain) evaluates its own. (task.rounds is fixed: the toy's score reads
    it, and the start stops at loop.rounds=0.)"""
    from compare_toy import score

    path = write_compare(
        toy, seeds=2, shared_start={"recipe": "toy.yaml"},
        overrides=["task.rounds=3", "loop.checkpoint=true", "loop.keep_checkpoints=4",
                   "loop.monitor=toy/score"],
        conditions={"low": {"recipe": "toy.yaml"},
                    "low_kept": {"recipe": "toy.yaml", "overrides": ["loop.keep_checkpoints=5"]},
                    "high": {"recipe": "toy.yaml", "overrides": ["reward.gain=2.0"]}},
        evaluations={"r0": {"round": 0, "overrides": ["task.eval_offset=0.5"]},
                     "last": {"round": "final"}})
    result = run_compare(load_compare(path))
    assert all(c.state == "done" for c in result.cells)
    starts = {c.seed: Path(c.run_dir) for c in result.starts}
    for cell in result.cells:
        record = json.loads((Path(cell.run_dir) / "evals" / "r0.json").read_text())
        gain = 2.0 if cell.condition == "high" else 1.0
        assert record["round"] == 0 and record["requested_round"] == 0
        assert record["metrics"]["toy/score"] == score(gain, cell.seed, 0, 3) + 0.5
        source = starts[cell.seed] / "evals" / "r0-round-0.json"
        assert record.get("same_as") == (None if cell.condition == "high" else str(source))
        last = json.loads((Path(cell.run_dir) / "evals" / "last.json").read_text())
        assert last["round"] == 3 and "same_as" not in last
    for start in starts.values():  # one evaluation of each start, not one per condition
        assert [p.name for p in (start / "evals").glob("*.json")] == ["r0-round-0.json"]


def test_a_start_evaluation_another_worker_is_making_is_not_made_twice(toy):
    """While another worker of this host holds the start's evaluation lock, a cell that needs
    it is left without it (its worker runs the next cell), and the catch-up pass (``wait``)
    waits for the lock, then copies or makes it once; a lock of another host is not waited
    for."""
    common = dict(seeds=2, shared_start={"recipe": "toy.yaml"},
                  overrides=["task.rounds=3", "loop.checkpoint=true",
                             "loop.keep_checkpoints=4", "loop.monitor=toy/score"],
                  conditions={"low": {"recipe": "toy.yaml"},
                              "low_too": {"recipe": "toy.yaml"}})
    result = run_compare(load_compare(write_compare(toy, **common)))
    spec = load_compare(write_compare(toy, **common, evaluations={"r0": {"round": 0}}))
    cell = Path(result.cells[0].run_dir)
    start = Path(next(s for s in result.starts if s.seed == result.cells[0].seed).run_dir)
    lock = start / "evals" / ".r0-round-0.lock"
    lock.parent.mkdir(exist_ok=True)

    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    assert evaluate_cell(spec, cell) == 0  # held by a live worker: not made a second time
    assert not (cell / "evals" / "r0.json").exists()
    lock.write_text(json.dumps({"host": "another-host", "pid": os.getpid()}))
    assert evaluate_cell(spec, cell, wait=True) == 0  # another host's lock: not waited for

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2)"])
    reaper = threading.Thread(target=holder.wait)  # no zombie: a zombie's pid looks alive
    reaper.start()
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": holder.pid}))
    began = time.monotonic()
    assert evaluate_cell(spec, cell, wait=True) == 1  # waits until its owner is gone
    reaper.join()
    assert time.monotonic() - began >= 1.0 and holder.returncode == 0
    record = json.loads((cell / "evals" / "r0.json").read_text())
    assert record["same_as"] == str(start / "evals" / "r0-round-0.json")
    assert not lock.exists()

"""Run directory primitives and the progress display."""

from __future__ import annotations

import io
import json
import math
import os

import advx.rundir
import pytest
import torch
from advx.progress import RichProgress
from advx.rundir import RunDir, atomic_write_text, jsonable
from advx.runner import run_recipe
from rich.console import Console


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_jsonable_makes_strict_json():
    value = {"a": torch.tensor(1.5), "b": float("nan"), "c": [torch.tensor([1, 2])],
             "d": math.inf}
    assert json.loads(json.dumps(jsonable(value), allow_nan=False)) == {
        "a": 1.5, "b": None, "c": [[1, 2]], "d": None
    }


def test_run_dirs_are_unique_and_metrics_survive_a_cut_line(tmp_path):
    first, second = RunDir.create(tmp_path, "x"), RunDir.create(tmp_path, "x")
    assert first.path != second.path and first.path.parent == tmp_path / "x"
    first.append_metrics({"kind": "round", "round": 0, "m": 1.0})
    first.append_metrics({"kind": "round", "round": 1, "m": 2.0})
    with open(first.metrics_path, "a") as handle:
        handle.write('{"kind": "step", "rou')  # a crash mid-line
    assert [r["round"] for r in first.read_metrics()] == [0, 1]
    kept, notes = first.truncate_metrics(0)
    assert [r["round"] for r in kept] == [0] and len(notes) == 1 and "line 3" in notes[0]
    assert first.metrics_path.read_text().count("\n") == 1


def test_checkpoints_are_all_or_nothing(tmp_path):
    run = RunDir.create(tmp_path, "x")
    run.save_checkpoint(0, {"a": {"w": torch.ones(2)}})
    (run.checkpoints / ".round-1.tmpjunk").mkdir()  # what a crash mid-write leaves
    assert run.checkpoint_rounds() == [0] and run.last_checkpoint() == 0
    assert torch.equal(run.load_checkpoint(0)["a"]["w"], torch.ones(2))
    for r in (1, 2, 3):
        run.save_checkpoint(r, {"a": r})
    run.prune_checkpoints(2)
    assert run.checkpoint_rounds() == [2, 3]
    run.save_checkpoint(4, {"a": 4})
    run.prune_checkpoints(2, protect={2})  # the best by the monitor is never pruned
    assert run.checkpoint_rounds() == [2, 3, 4]


def test_replacing_a_checkpoint_keeps_the_old_one_until_the_new_one_is_in_place(
        tmp_path, monkeypatch):
    run = RunDir.create(tmp_path, "x")
    run.save_checkpoint(1, {"a": 1})
    real_replace = os.replace

    def failing(src, dst):
        if str(dst).endswith("round-1") and ".round-1.old" not in str(src):
            raise OSError(28, "No space left on device")  # the new folder cannot move in
        return real_replace(src, dst)

    monkeypatch.setattr(advx.rundir.os, "replace", failing)
    with pytest.raises(OSError):
        run.save_checkpoint(1, {"a": 2})
    monkeypatch.setattr(advx.rundir.os, "replace", real_replace)
    assert run.last_checkpoint() == 1 and run.load_checkpoint(1)["a"] == 1  # was deleted
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["round-1"]
    run.save_checkpoint(1, {"a": 3})
    assert run.load_checkpoint(1)["a"] == 3
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["round-1"]


def test_rich_progress_on_a_terminal(pm, toy_recipe, tmp_path):
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=160)
    progress = RichProgress(console=console)
    assert progress.live
    run_recipe(toy_recipe, ["loop.rounds=2"], runs_root=tmp_path, plugins=[progress])
    text = buffer.getvalue()
    assert "round 2/2" in text and "ETA" in text and "disc_prob=" in text
    assert "round 1/2 done" in text and "eval/p_real=" in text


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    """mkstemp creates 0600 files; run folders are read by other users and machines."""
    import os
    import stat

    from advx.rundir import atomic_write_text

    path = tmp_path / "summary.json"
    atomic_write_text(path, "{}")
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask

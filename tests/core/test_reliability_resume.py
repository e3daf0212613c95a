"""Resume and run-folder faults (docs/reliability.md): what --resume guarantees, which keys
may change, incomplete checkpoints, foreign or corrupt files, --run-dir, build failures and
a full or read-only disk."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import advx
import pytest
from advx.errors import ConfigError
from advx.rundir import RunDir
from advx.runner import run_recipe
from core_toys import TOY_RECIPE
from typer.testing import CliRunner


def _run(recipe: Path, tmp_path: Path, *overrides: str, **kw):
    return run_recipe(recipe, list(overrides), runs_root=tmp_path / "runs", **kw)


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()
            if x.startswith("{") and x.endswith("}")]


def _no_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


class _Crash(Exception):
    pass


class _CrashInRound3:
    @advx.hookimpl
    def advx_on_step_end(self, run, round, step, metrics):
        if round == 3 and step == 2:
            raise _Crash


def _crashed(toy_recipe: Path, tmp_path: Path) -> Path:
    """A run stopped in round 3 with every checkpoint kept (rounds 0-2)."""
    target = tmp_path / "crashed"
    with pytest.raises(_Crash):
        run_recipe(toy_recipe, ["loop.keep_checkpoints=0"], run_dir=target,
                   plugins=[_CrashInRound3()])
    return target


# --------------------------------------------------------------------- metrics.jsonl


def test_resume_keeps_records_after_an_undecodable_middle_line(pm, toy_recipe, tmp_path):
    full = _run(toy_recipe, tmp_path, "loop.keep_checkpoints=0")
    target = _crashed(toy_recipe, tmp_path)
    lines = (target / "metrics.jsonl").read_text().splitlines()
    lines.insert(3, "\x00garbage{")  # inside round 1's records
    (target / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    result = run_recipe(None, resume=target)
    assert "line 4 is not valid JSON" in " ".join(result.summary["warnings"])
    assert _no_time(_records(target)) == _no_time(_records(full.run_dir))
    assert result.summary["final"]["round"] == 3


def test_resume_drops_only_a_cut_last_line(pm, toy_recipe, tmp_path):
    full = _run(toy_recipe, tmp_path, "loop.keep_checkpoints=0")
    target = _crashed(toy_recipe, tmp_path)
    with open(target / "metrics.jsonl", "a") as handle:
        handle.write('{"kind": "step", "rou')
    result = run_recipe(None, resume=target)
    assert any("dropped" in w for w in result.summary["warnings"])
    assert _no_time(_records(target)) == _no_time(_records(full.run_dir))


# --------------------------------------------------------------------- overrides on resume


def test_rejected_override_leaves_recipe_yaml_alone(pm, toy_recipe, tmp_path):
    target = _crashed(toy_recipe, tmp_path)
    before = (target / "recipe.yaml").read_bytes()
    for override in ("reward.no_such_key=2", "reward.beta=-1",  # rejected by validation
                     "loggers=[{name: toy_memory, tag: ''}]"):  # by a factory, at build time
        with pytest.raises(ConfigError):
            run_recipe(None, [override], resume=target)
        assert (target / "recipe.yaml").read_bytes() == before
    assert run_recipe(None, resume=target).summary["status"] == "complete"


def test_training_keys_cannot_change_on_resume(pm, toy_recipe, tmp_path):
    target = _crashed(toy_recipe, tmp_path)
    before = (target / "recipe.yaml").read_bytes()
    with pytest.raises(ConfigError, match=r"reward.beta cannot change on --resume "
                                          r"\(0.05 -> 0.5\)"):
        run_recipe(None, ["reward.beta=0.5"], resume=target)
    with pytest.raises(ConfigError, match=r"seed cannot change"):
        run_recipe(None, ["seed=9"], resume=target)
    assert (target / "recipe.yaml").read_bytes() == before
    # keys that do not change what was trained may
    result = run_recipe(None, ["loop.rounds=4", "loop.eval_every=2", "loop.keep_checkpoints=1",
                               "loggers=[]"], resume=target)
    assert result.summary["rounds_completed"] == 4
    assert "rounds: 4" in (target / "recipe.yaml").read_text()


def test_foreign_recipe_yaml_is_one_message(pm, toy_recipe, tmp_path):
    target = _crashed(toy_recipe, tmp_path)
    foreign = TOY_RECIPE.replace("beta: 0.05", "beta: 0.7")
    (target / "recipe.yaml").write_text(foreign)
    with pytest.raises(ConfigError, match=r"not the recipe this run's checkpoint was trained "
                                          r"with: reward.beta is 0.7 there but 0.05"):
        run_recipe(None, resume=target)


def test_unreadable_recipe_yaml_is_one_message(pm, toy_recipe, tmp_path):
    target = _crashed(toy_recipe, tmp_path)
    (target / "recipe.yaml").write_bytes(b"\xff\xfe not yaml: [")
    with pytest.raises(ConfigError, match=r"recipe.yaml is not readable YAML"):
        run_recipe(None, resume=target)


def test_corrupt_summary_is_rewritten_with_a_warning(pm, toy_recipe, tmp_path):
    target = _crashed(toy_recipe, tmp_path)
    for folder in (target / "checkpoints").iterdir():  # a checkpoint from before eval_keys
        (folder / "loop.pt").write_bytes(b"")           # were stored: resume reads summary
        (folder / "complete.json").unlink()
    (target / "summary.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"no complete checkpoint"):
        run_recipe(None, resume=target)
    target = _crashed(toy_recipe, tmp_path / "again")
    (target / "summary.json").write_text("{not json")
    result = run_recipe(None, resume=target)
    assert result.summary["status"] == "complete"
    assert json.loads((target / "summary.json").read_text())["status"] == "complete"


# --------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("damage", ["truncated", "no_loop", "empty"])
def test_incomplete_checkpoint_falls_back_to_the_previous(pm, toy_recipe, tmp_path, damage):
    full = _run(toy_recipe, tmp_path, "loop.keep_checkpoints=0")
    target = _crashed(toy_recipe, tmp_path)
    last = target / "checkpoints" / "round-2"
    if damage == "truncated":
        data = (last / "generator.pt").read_bytes()
        (last / "generator.pt").write_bytes(data[: len(data) // 2])
    elif damage == "no_loop":
        (last / "loop.pt").unlink()
    else:
        for child in last.iterdir():
            child.unlink()
    result = run_recipe(None, resume=target)
    assert result.summary["resumed_from_round"] == 1
    assert any("round-2 is incomplete" in w for w in result.summary["warnings"])
    assert _no_time(_records(target)) == _no_time(_records(full.run_dir))


def test_unreadable_checkpoint_without_marker_falls_back(pm, toy_recipe, tmp_path):
    target = _crashed(toy_recipe, tmp_path)
    last = target / "checkpoints" / "round-2"
    (last / "complete.json").unlink()  # as written before the marker existed
    (last / "rng.pt").write_bytes(b"PK\x03\x04 truncated")
    result = run_recipe(None, resume=target)
    assert result.summary["resumed_from_round"] == 1
    assert any("unreadable" in w for w in result.summary["warnings"])


# --------------------------------------------------------------------- --run-dir


def test_run_dir_never_overwrites_a_users_folder(pm, toy_recipe, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "recipe.yaml").write_text("my own notes\n")
    with pytest.raises(ConfigError, match=r"non-empty folder that is not an advx run"):
        run_recipe(toy_recipe, run_dir=mine)
    assert (mine / "recipe.yaml").read_text() == "my own notes\n"
    assert sorted(p.name for p in mine.iterdir()) == ["recipe.yaml"]
    done = run_recipe(toy_recipe, ["loop.rounds=0"], run_dir=tmp_path / "done").run_dir
    with pytest.raises(ConfigError, match=r"already holds a run; continue it with"):
        run_recipe(toy_recipe, run_dir=done)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_recipe(toy_recipe, ["loop.rounds=1"], run_dir=empty).run_dir == empty


def test_run_dir_that_is_a_file(pm, toy_recipe, tmp_path):
    target = tmp_path / "a_file"
    target.write_text("x")
    with pytest.raises(ConfigError, match=r"is a file, not a folder"):
        run_recipe(toy_recipe, run_dir=target)


def test_run_dir_with_resume_is_an_error(pm, toy_recipe, tmp_path):
    from advx.cli import app

    target = _crashed(toy_recipe, tmp_path)
    with pytest.raises(ConfigError, match=r"--run-dir and --resume exclude each other"):
        run_recipe(None, resume=target, run_dir=tmp_path / "other")
    result = CliRunner().invoke(app, ["run", "--resume", str(target), "--run-dir",
                                      str(tmp_path / "other"), "-q"])
    assert result.exit_code == 2 and "exclude each other" in result.output


def test_build_failure_leaves_no_half_built_run_folder(pm, toy_recipe, tmp_path):
    with pytest.raises(ConfigError, match=r"reward.beta: expected a number >= 0"):
        _run(toy_recipe, tmp_path, "reward.beta=-1")
    assert list((tmp_path / "runs" / "toy").iterdir()) == []
    given = tmp_path / "given"
    with pytest.raises(ConfigError):
        run_recipe(toy_recipe, ["reward.beta=-1"], run_dir=given)
    assert not given.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError):
        run_recipe(toy_recipe, ["reward.beta=-1"], run_dir=empty)
    assert empty.is_dir() and list(empty.iterdir()) == []


# --------------------------------------------------------------------- the disk


def test_read_only_runs_folder_is_one_message(pm, toy_recipe, tmp_path):
    if os.geteuid() == 0:  # root writes anywhere; simulate the refusal instead
        pytest.importorskip("unittest.mock")
        from unittest import mock

        denied = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "ro"))
        with mock.patch.object(Path, "mkdir", side_effect=denied), \
                pytest.raises(ConfigError, match=r"cannot create the run folder .*Permission"):
            run_recipe(toy_recipe, runs_root=tmp_path / "ro")
        return
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match=r"cannot create the run folder"):
            run_recipe(toy_recipe, runs_root=root)
    finally:
        root.chmod(0o700)


def test_full_disk_shows_the_original_error_once(pm, toy_recipe, tmp_path, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "metrics.jsonl")

    monkeypatch.setattr(RunDir, "append_metrics", lambda self, record: no_space())
    monkeypatch.setattr(RunDir, "write_summary", lambda self, summary: no_space())
    with pytest.raises(ConfigError) as caught:
        _run(toy_recipe, tmp_path)
    message = str(caught.value)
    assert "No space left on device" in message and "ENOSPC" in message
    assert "--resume" in message
    assert isinstance(caught.value.__cause__, OSError)
    assert caught.value.__cause__.__context__ is None  # not hidden behind a second ENOSPC


def test_full_disk_at_the_final_summary_is_one_message(pm, toy_recipe, tmp_path, monkeypatch):
    def no_space(self, summary):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.summary_path))

    monkeypatch.setattr(RunDir, "write_summary", no_space)
    with pytest.raises(ConfigError, match=r"cannot write .*summary.json: No space left"):
        _run(toy_recipe, tmp_path, "loop.rounds=1")

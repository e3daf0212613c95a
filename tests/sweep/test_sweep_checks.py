"""Sweep reliability: bounds checked before the first trial, a sweep whose every trial failed
exits non-zero, failures print one line each (no Optuna traceback), a corrupt study database
is one message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from advx.cli import app, sweep_app
from advx.errors import ConfigError
from advx.sweep import check_space, load_sweep, run_sweep
from sweep_helpers import write_sweep
from typer.testing import CliRunner

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _no_trials_ran(folder: Path) -> None:
    assert not (folder / "runs" / "sweeps" / "toy_ab").exists(), "a trial started"


def test_a_bound_outside_the_range_the_factory_accepts_fails_before_any_trial(toy):
    # ToyReward (like cls_loss) accepts alpha in [0, 1] only when it is built.
    path = write_sweep(toy, space={"reward.alpha": {"type": "float", "low": 0.0, "high": 5.0}})
    with pytest.raises(ConfigError) as info:
        run_sweep(load_sweep(path), runs_root=toy / "runs")
    message = str(info.value)
    assert "space.reward.alpha: the value 5.0 is outside what the component accepts" in message
    assert "reward.alpha must lie in [0, 1], got 5.0" in message
    _no_trials_ran(toy)


def test_a_bound_outside_the_range_the_config_class_checks_fails_before_any_trial(toy):
    path = write_sweep(toy, space={"task.sleep_s": {"type": "float", "low": -1.0, "high": 0.0}})
    with pytest.raises(ConfigError) as info:
        run_sweep(load_sweep(path), runs_root=toy / "runs")
    assert "space.task.sleep_s: the value -1.0 is not valid in the recipe" in str(info.value)
    assert "sleep_s must be >= 0, got -1.0" in str(info.value)
    _no_trials_ran(toy)


def test_a_categorical_choice_outside_the_range_fails_before_any_trial(toy):
    path = write_sweep(toy, space={"reward.alpha": {"type": "categorical", "choices": [0.2, 2]}})
    with pytest.raises(ConfigError, match="the value 2 is outside what the component accepts"):
        run_sweep(load_sweep(path), runs_root=toy / "runs")
    _no_trials_ran(toy)


def test_a_factory_that_cannot_build_alone_does_not_reject_good_bounds(toy):
    # Built alone, this reward fails for want of a generator, with any alpha: the probe must
    # not blame the bounds (the first trial is where such a factory is checked).
    path = write_sweep(toy, overrides={"reward.name": "sweep_toy_needy"})
    check_space(load_sweep(path))


@pytest.mark.parametrize("name", ["..", "."])
def test_sweep_names_that_leave_the_runs_folder_are_refused(toy, name):
    path = write_sweep(toy, name="dots")
    path.write_text(path.read_text().replace("name: dots", f"name: '{name}'"))
    with pytest.raises(ConfigError, match=r"may not be '\.' or '\.\.'"):
        load_sweep(path)


def test_a_sweep_whose_every_trial_failed_exits_2_with_one_message(toy):
    path = write_sweep(toy, overrides={"task.mode": "raise", "task.fail_round": 0}, n_trials=2)
    result = CliRunner().invoke(sweep_app, [str(path), "--runs-root", "runs"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.output.count("error:") == 1
    assert "sweep 'toy_ab': all 2 trial(s) failed" in result.output
    assert "RuntimeError: toy task exploded at pretrain" in result.output


def test_a_sweep_with_one_good_trial_exits_0(toy):
    space = {"task.mode": {"type": "categorical", "choices": ["ok", "raise"]}}
    path = write_sweep(toy, space=space, sampler={"name": "bruteforce", "seed": 0}, n_trials=2)
    result = CliRunner().invoke(app, ["sweep", str(path), "--runs-root", "runs"])
    assert result.exit_code == 0, result.output


def _sweep_subprocess(folder: Path, path: Path) -> subprocess.CompletedProcess:
    """``python -m advx sweep FILE`` as a user runs it: Optuna's log handler writes to the
    real stderr, which CliRunner would not capture."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ADVX_LOAD_PLUGINS": "loggers",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "core"), str(ROOT / "plugins"), str(HERE)])}
    return subprocess.run([sys.executable, "-m", "advx", "sweep", str(path), "--runs-root",
                           "runs"], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)


def test_failed_trials_and_an_unknown_metric_print_one_message_each_without_tracebacks(toy):
    failing = write_sweep(
        toy, name="fails", n_trials=2,
        space={"task.mode": {"type": "categorical", "choices": ["ok", "raise"]}},
        sampler={"name": "bruteforce", "seed": 0},
    )
    done = _sweep_subprocess(toy, failing)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output and "failed with parameters" not in output
    assert output.count("toy task exploded") == 1, output  # the trial's own line, once

    unknown = write_sweep(toy, name="nometric", objective={"metric": "toy/scor"})
    done = _sweep_subprocess(toy, unknown)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output
    assert output.count("objective.metric 'toy/scor' is not produced") == 1, output


def test_show_of_a_corrupt_study_database_is_one_message(toy):
    (toy / "runs" / "sweeps").mkdir(parents=True)
    (toy / "runs" / "sweeps" / "broken.db").write_bytes(b"this is not a database\x00" * 64)
    result = CliRunner().invoke(app, ["sweep", "show", "broken"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.output.startswith("error: storage: cannot open sqlite:///")
    assert "file is not a database" in result.output


def test_workers_creating_one_sqlite_storage_at_once_do_not_fail(tmp_path):
    """Several processes opening a new SQLite storage at the same moment race to create its
    tables; the losers retry instead of failing with "table ... already exists"."""
    import subprocess
    import sys
    import time

    url = f"sqlite:///{tmp_path / 'race.db'}"
    code = ("import sys, time; from advx.sweep.storage import make_storage; "
            "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); "  # start together
            "make_storage(sys.argv[1]); print('ok')")
    for _ in range(2):  # a race: give it two chances to happen (it does on the old code)
        (tmp_path / "race.db").unlink(missing_ok=True)
        start = str(time.time() + 8)  # after every process has imported optuna
        procs = [subprocess.Popen([sys.executable, "-c", code, url, start],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(6)]
        outs = [p.communicate(timeout=120) for p in procs]
        for proc, (out, err) in zip(procs, outs, strict=True):
            assert proc.returncode == 0 and out.strip() == "ok", err

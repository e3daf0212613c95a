"""Sweeps on SQLite: trials are run directories, reruns continue, failures and pruning are
recorded, several worker processes share one study, and `advx sweep show` reads it back."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import sweep_toy
from advx.cli import sweep_app
from advx.plugins import get_registry
from advx.recipe import load_recipe, validate_recipe
from advx.runner import run_recipe
from advx.sweep import load_sweep, run_sweep
from advx.sweep.report import show_study
from optuna.trial import TrialState
from sweep_helpers import write_sweep
from typer.testing import CliRunner


def _study(folder: Path, name: str = "toy_ab") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder}/runs/sweeps/{name}.db")


def test_trials_are_run_directories_and_a_rerun_continues_the_study(toy):
    spec = load_sweep(write_sweep(toy))
    result = run_sweep(spec, runs_root=toy / "runs")
    assert [t.state for t in result.trials] == [TrialState.COMPLETE] * 4
    for trial in result.trials:
        run_dir = Path(trial.user_attrs["run_dir"])
        assert run_dir == toy / "runs" / "sweeps" / "toy_ab" / f"trial-{trial.number:04d}"
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "complete"
        assert trial.value == pytest.approx(summary["final"]["toy/score"])
        # the trial's values reached the run's recipe
        assert summary["final"]["toy/alpha"] == pytest.approx(trial.params["reward.alpha"])
        expected = sweep_toy.score(trial.params["reward.alpha"], trial.params["reward.beta"], 3, 3)
        assert trial.value == pytest.approx(expected)
        assert trial.user_attrs["metrics"]["toy/score"] == pytest.approx(trial.value)
        assert sorted(trial.intermediate_values) == [0, 1, 2, 3]
        assert trial.user_attrs["code"].startswith("advx ")
    first = {t.number: t.params for t in result.trials}

    again = run_sweep(spec, n_trials=6, runs_root=toy / "runs")
    assert len(again.trials) == 6
    assert {t.number: t.params for t in again.trials[:4]} == first
    assert len(run_sweep(spec, n_trials=6, runs_root=toy / "runs").trials) == 6  # target met


def test_a_raising_or_nan_trial_is_failed_with_its_error_and_the_sweep_goes_on(toy):
    path = write_sweep(
        toy,
        space={"task.mode": {"type": "categorical", "choices": ["ok", "raise", "nan"]}},
        sampler={"name": "bruteforce", "seed": 0},
        n_trials=3,
    )
    result = run_sweep(load_sweep(path), runs_root=toy / "runs")
    by_mode = {t.params["task.mode"]: t for t in result.trials}
    assert sorted(by_mode) == ["nan", "ok", "raise"]
    assert by_mode["ok"].state == TrialState.COMPLETE
    assert by_mode["raise"].state == TrialState.FAIL
    assert "RuntimeError: toy task exploded at round-1" in by_mode["raise"].user_attrs["error"]
    assert by_mode["nan"].state == TrialState.FAIL
    assert "objective toy/score is nan (NaN or inf" in by_mode["nan"].user_attrs["error"]
    assert Path(by_mode["raise"].user_attrs["run_dir"]).is_dir()


def test_pruned_trials_are_recorded_as_pruned(toy):
    # Round-0 score is quality/4: alpha=0.3 gives 0.25, alpha=0.95 gives 0.144 < 0.2.
    path = write_sweep(
        toy,
        space={"reward.alpha": {"type": "categorical", "choices": [0.3, 0.95]}},
        sampler={"name": "bruteforce", "seed": 0},
        pruner={"name": "threshold", "lower": 0.2},
        n_trials=2,
    )
    result = run_sweep(load_sweep(path), runs_root=toy / "runs")
    by_alpha = {t.params["reward.alpha"]: t for t in result.trials}
    assert by_alpha[0.3].state == TrialState.COMPLETE
    pruned = by_alpha[0.95]
    assert pruned.state == TrialState.PRUNED
    assert list(pruned.intermediate_values) == [0]  # stopped right after round 0
    summary = json.loads((Path(pruned.user_attrs["run_dir"]) / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["rounds_completed"] == 0


def test_show_writes_plots_and_a_best_recipe_that_advx_run_accepts(toy):
    spec = load_sweep(write_sweep(toy, n_trials=4))
    result = run_sweep(spec, runs_root=toy / "runs")
    written = show_study("toy_ab", runs_root=toy / "runs")
    out = toy / "runs" / "sweeps" / "toy_ab"
    for name in ("history", "importances", "contour"):
        assert written[name] == out / f"{name}.png"
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best_yaml = written["best_recipe"]
    cfg = load_recipe(best_yaml)
    recipe = validate_recipe(cfg, get_registry())
    assert recipe.components["reward"].config.alpha == result.best.params["reward.alpha"]
    rerun = run_recipe(best_yaml, runs_root=toy / "runs")
    assert rerun.summary["final"]["toy/score"] == pytest.approx(result.best.value)

    # The same file through the `advx run` command line.
    from advx.cli import app

    cli = CliRunner().invoke(app, ["run", str(best_yaml), "loop.rounds=1"])
    assert cli.exit_code == 0, cli.output


def test_cli_default_command_show_and_bad_input(toy):
    runner = CliRunner()
    path = write_sweep(toy)
    done = runner.invoke(sweep_app, [str(path), "loop.rounds=1", "--n-trials", "2",
                                     "--runs-root", "runs"])
    assert done.exit_code == 0, done.output
    trials = _study(toy).trials
    assert len(trials) == 2
    summary = json.loads((Path(trials[0].user_attrs["run_dir"]) / "summary.json").read_text())
    assert summary["rounds_completed"] == 1  # the command line's extra fixed override
    shown = runner.invoke(sweep_app, ["show", "toy_ab", "--no-plots"])
    assert shown.exit_code == 0, shown.output
    assert "reward.alpha" in shown.output and (toy / "runs/sweeps/toy_ab/best.yaml").is_file()
    by_file = runner.invoke(sweep_app, ["show", str(path), "--no-plots"])
    assert by_file.exit_code == 0, by_file.output

    bad = runner.invoke(sweep_app, [str(path), "--storage", "nonsense"])
    assert bad.exit_code == 2 and "is not a database URL" in bad.output
    missing = runner.invoke(sweep_app, ["show", "nostudy"])
    assert missing.exit_code == 2 and "no study database" in missing.output


def test_two_worker_processes_share_one_sqlite_study(toy):
    # the first trial of each worker waits for the other: both are known to take part
    spec = load_sweep(write_sweep(toy, n_trials=4, overrides={"task.barrier": str(toy / "b")}))
    result = run_sweep(spec, workers=2, runs_root=toy / "runs")
    numbers = [t.number for t in result.trials]
    assert 4 <= len(numbers) <= 5 and len(set(numbers)) == len(numbers)
    assert all(t.state == TrialState.COMPLETE for t in result.trials)
    run_dirs = {t.user_attrs["run_dir"] for t in result.trials}
    assert len(run_dirs) == len(numbers)
    assert all((Path(d) / "summary.json").is_file() for d in run_dirs)
    # the workers sample with seeds 0 and 1, so they do not propose the same points
    alphas = [t.params["reward.alpha"] for t in result.trials]
    assert len(set(alphas)) == len(alphas)
    assert len({t.user_attrs["worker"] for t in result.trials}) == 2

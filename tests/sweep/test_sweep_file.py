"""Sweep files: parsing, and every bad input failing with a clear message before any trial."""

from __future__ import annotations

import dataclasses

import optuna
import pytest
import yaml
from advx.errors import ConfigError
from advx.sweep import check_space, load_sweep, make_storage, run_sweep
from sweep_helpers import write_sweep


def _no_trials_ran(folder):
    assert not (folder / "runs" / "sweeps" / "toy_ab").exists(), "a trial started"


def test_parses_space_objective_and_overrides(toy):
    path = write_sweep(
        toy,
        overrides={"loop": {"rounds": 2}, "reward.scale": 2},
        space={
            "reward.alpha": {"type": "float", "low": 0.0, "high": 1.0},
            "reward.beta": {"type": "float", "low": 0.001, "high": 1.0, "log": True},
            "reward.scale": {"type": "int", "low": 1, "high": 3},
            "task.mode": {"type": "categorical", "choices": ["ok"]},
        },
        objective={"metric": "toy/score", "direction": "minimize", "summary": "best"},
    )
    spec = load_sweep(path)
    assert spec.name == "toy_ab"
    assert spec.recipe == (toy / "toy.yaml").resolve()
    assert spec.overrides == ["loop.rounds=2", "reward.scale=2"]
    assert spec.space["reward.beta"].log is True
    assert spec.space["reward.scale"].type == "int"
    assert spec.space["task.mode"].choices == ["ok"]
    assert (spec.objective.metric, spec.objective.direction, spec.objective.summary) == (
        "toy/score", "minimize", "best")
    base = check_space(spec)
    assert base.loop.rounds == 2 and base.reward.scale == 2


def test_recipe_is_found_relative_to_the_sweep_file(toy, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("cwd")
    path = write_sweep(toy)
    import os

    os.chdir(elsewhere)
    assert load_sweep(path).recipe == (toy / "toy.yaml").resolve()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"recipe": "nope.yaml"}, "recipe: file not found"),
        ({"n_trails": 3}, "Did you mean 'n_trials'"),
        ({"space": None}, "space: required"),
        ({"objective": {"direction": "maximize"}}, "objective: expected {metric"),
        ({"objective": {"metric": "m", "direction": "up"}}, "expected maximize or minimize"),
        ({"space": {"reward.beta": {"type": "float", "low": 0, "high": 1, "log": True}}},
         "log: true needs low > 0"),
        ({"space": {"reward.alpha": {"type": "float", "low": 1, "high": 0}}},
         "low (1) is greater than high (0)"),
        ({"space": {"reward.alpha": {"type": "uniform", "low": 0, "high": 1}}},
         "space.reward.alpha.type: expected one of"),
        ({"space": {"task.mode": {"type": "categorical", "choices": []}}},
         "non-empty list is required"),
        ({"space": {"reward.scale": {"type": "int", "low": 0.5, "high": 3}}},
         "int bounds must be whole numbers"),
        ({"space": {"reward.alpha": {"type": "float", "lo": 0, "high": 1}}}, "unknown key 'lo'"),
        ({"sampler": {"name": "bayes"}}, "unknown sampler 'bayes'; available: tpe"),
        ({"sampler": {"name": "tpe", "n_startup": 3}}, "sampler 'tpe' (TPESampler) rejects"),
        ({"pruner": {"name": "median", "warmup": 1}}, "pruner 'median' (MedianPruner) rejects"),
        ({"n_trials": 0}, "n_trials: expected a positive integer"),
        ({"plugins": {"a": 1}}, "plugins: expected a list of module names"),
        ({"space": {"reward.alpha": {"type": "float", "low": 0, "high": 1, "step": "0.1"}}},
         "space.reward.alpha.step: must be a number > 0, got '0.1'"),
        ({"name": "a b"}, "may only hold letters"),
    ],
)
def test_bad_sweep_files(toy, changes, expected):
    path = write_sweep(toy, **changes)
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value) or "sweep file" in str(info.value)


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({"reward.alpah": {"type": "float", "low": 0, "high": 1}},
         "space.reward.alpah: unknown key 'reward.alpah' in reward 'sweep_toy' "
         "(ToyRewardConfig). Did you mean 'alpha'?"),
        ({"loop.round": {"type": "int", "low": 1, "high": 3}},
         "unknown key 'loop.round' in loop. Did you mean 'rounds'?"),
        ({"classifier.lr": {"type": "float", "low": 0.1, "high": 1}},
         "the recipe has no classifier: block"),
        ({"rewrd.alpha": {"type": "float", "low": 0, "high": 1}},
         "unknown key 'rewrd' in the recipe. Did you mean 'reward'?"),
        ({"reward.scale": {"type": "float", "low": 0.5, "high": 2.5}},
         "space.reward.scale: the value 0.5 is not valid in the recipe"),
        ({"task.mode": {"type": "categorical", "choices": ["ok", [1]]}}, "only scalars"),
        ({"reward": {"type": "categorical", "choices": ["a"]}},
         "reward: expected a mapping with a 'name:' key"),
        ({"seed": {"type": "categorical", "choices": [0, "x"]}},
         "space.seed: the value 'x' is not valid in the recipe: seed: expected int"),
    ],
)
def test_unknown_or_invalid_space_keys_fail_before_any_trial(toy, space, expected):
    path = write_sweep(toy, space=space)
    with pytest.raises(ConfigError) as info:
        run_sweep(load_sweep(path), runs_root=toy / "runs")
    assert expected in str(info.value)
    _no_trials_ran(toy)


def test_seed_can_be_searched_though_the_recipe_may_not_write_it(toy):
    spec = load_sweep(write_sweep(toy, space={"seed": {"type": "int", "low": 0, "high": 3}}))
    check_space(spec)


def test_a_key_absent_from_the_recipe_but_in_the_component_config_is_accepted(toy):
    # `task.sleep_s` is not written in toy.yaml, only declared by ToyTaskConfig.
    path = write_sweep(toy, space={"task.sleep_s": {"type": "float", "low": 0.0, "high": 0.001}},
                       n_trials=1)
    result = run_sweep(load_sweep(path), runs_root=toy / "runs")
    assert [t.state for t in result.trials] == [optuna.trial.TrialState.COMPLETE]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "is not a database URL"),
        ("postgresql://nobody@127.0.0.1:9/advx", "Connection refused"),
        ("mysql://u@127.0.0.1/db", "no database driver for 'mysql'"),
        ("sqlite://", "names no SQLite file"),
    ],
)
def test_bad_storage_urls(toy, url, expected):
    with pytest.raises(ConfigError) as info:
        make_storage(url)
    assert expected in str(info.value)
    with pytest.raises(ConfigError):
        run_sweep(load_sweep(write_sweep(toy)), storage=url, runs_root=toy / "runs")
    _no_trials_ran(toy)


def test_password_is_hidden_in_storage_errors(toy):
    with pytest.raises(ConfigError) as info:
        make_storage("postgresql://me:s3cret@127.0.0.1:9/advx")
    assert "s3cret" not in str(info.value)


def test_unknown_metric_stops_after_the_first_trial_naming_the_available_ones(toy):
    path = write_sweep(toy, objective={"metric": "toy/scor", "direction": "maximize"})
    with pytest.raises(ConfigError) as info:
        run_sweep(load_sweep(path), runs_root=toy / "runs")
    message = str(info.value)
    assert "objective.metric 'toy/scor' is not produced" in message
    assert "Did you mean 'toy/score'?" in message and "toy/alpha" in message
    study = optuna.load_study(study_name="toy_ab",
                              storage=f"sqlite:///{toy}/runs/sweeps/toy_ab.db")
    trials = study.get_trials()
    assert len(trials) == 1, "the sweep went on after learning the metric does not exist"
    assert trials[0].state == optuna.trial.TrialState.FAIL
    assert "not produced" in trials[0].user_attrs["error"]
    # The study remembers the metrics its runs produce: rerunning now fails up-front.
    with pytest.raises(ConfigError, match="not produced"):
        run_sweep(load_sweep(path), runs_root=toy / "runs")
    assert len(study.get_trials()) == 1


def test_existing_study_with_another_direction_is_refused(toy):
    run_sweep(load_sweep(write_sweep(toy, n_trials=1)), runs_root=toy / "runs")
    flipped = write_sweep(toy, objective={"metric": "toy/score", "direction": "minimize"})
    with pytest.raises(ConfigError, match="already exists in this storage with direction"):
        run_sweep(load_sweep(flipped), runs_root=toy / "runs")


def test_a_study_continued_with_other_fixed_overrides_is_refused(toy):
    # `advx sweep FILE loop.rounds=1` for a quick look, then `advx sweep FILE`: the second
    # would count the quick trials towards n_trials and export their values with another base.
    spec = load_sweep(write_sweep(toy, n_trials=1))
    quick = dataclasses.replace(spec, overrides=["loop.rounds=1"])
    run_sweep(quick, runs_root=toy / "runs")
    with pytest.raises(ConfigError, match=r"loop.rounds was 1, now 3 \(1 key\(s\) differ\)"):
        run_sweep(spec, runs_root=toy / "runs")
    edited = yaml.safe_load((toy / "toy.yaml").read_text())
    (toy / "toy.yaml").write_text(yaml.safe_dump({**edited, "description": "reworded"}))
    assert len(run_sweep(quick, n_trials=2, runs_root=toy / "runs").trials) == 2


def test_one_plugin_module_may_be_given_as_a_string(toy):
    assert load_sweep(write_sweep(toy, plugins="sweep_toy")).plugins == ["sweep_toy"]

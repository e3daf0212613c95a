"""``advx compare --seeds`` and ``--budget`` (:class:`advx.compare.cells.Limits`): an
invocation that claims only some seeds, or only cells expected to finish in time, leaves the
rest waiting for a later one."""

from __future__ import annotations

import pytest
from advx.cli import app
from advx.compare import load_compare
from advx.compare.cells import (
    default_runs_dir,
    existing_storage,
    load_cells,
    parse_budget,
    parse_seeds,
)
from advx.errors import ConfigError
from compare_helpers import evaluated_seeds, write_compare
from typer.testing import CliRunner

START = {"recipe": "toy.yaml", "overrides": ["reward.gain=0.5"]}


def _run(path, *options: str):
    result = CliRunner().invoke(app, ["compare", "run", str(path), *options])
    return result


def _cells(path):
    spec = load_compare(path)
    return load_cells(spec, existing_storage(spec, None, default_runs_dir(spec)), starts=True)


def _states(path) -> dict[tuple[str, int], str]:
    return {(c.condition, c.seed): c.state for c in _cells(path)}


def test_seeds_runs_only_those_seeds_and_a_later_invocation_the_rest(toy):
    marks = toy / "marks"
    path = write_compare(toy, seeds=3, shared_start=START, overrides=[f"task.marker={marks}"])
    first = _run(path, "--seeds", "1-2", "--jobs", "2")  # the workers get the limits too
    assert first.exit_code == 0, first.output
    assert "left: 3 cell(s)" in first.output and "no estimate yet" not in first.output
    # the starts and both conditions of seeds 1 and 2 only; seed 0's cells wait
    assert evaluated_seeds(marks, "0.5") == [1, 2] and evaluated_seeds(marks, "2.0") == [1, 2]
    states = _states(path)
    assert {k: v for k, v in states.items() if k[1] == 0} == {
        ("_start", 0): "waiting", ("low", 0): "waiting", ("high", 0): "waiting"}
    assert all(v == "done" for k, v in states.items() if k[1] > 0)
    # (the workers' own lines go to their stderr, not captured here)
    assert "4 done, 2 waiting" in first.output and "are left by --seeds/--budget" in first.output
    second = _run(path)
    assert second.exit_code == 0, second.output
    assert set(_states(path).values()) == {"done"}
    assert evaluated_seeds(marks, "1.0") == [0, 1, 2]  # seed 0 ran now, and once


@pytest.mark.parametrize("seeds, expected", [("7", "has no seed 7"), ("1,a", "'a' is not a seed"),
                                             ("2-1", "'2-1' is not a seed")])
def test_a_bad_seeds_option_is_one_message_and_exit_2(toy, seeds, expected):
    path = write_compare(toy, seeds=3)
    result = _run(path, "--seeds", seeds)
    assert result.exit_code == 2 and expected in result.output
    assert "Traceback" not in result.output


def test_budget_claims_only_cells_expected_to_finish_in_time(toy):
    marks = toy / "marks"
    # every evaluation sleeps 0.75 s: a condition cell (rounds 0-3) takes ≥ 3 s, a start
    # (round 0 only) ≥ 0.75 s
    path = write_compare(toy, seeds=2, shared_start=START,
                         overrides=[f"task.marker={marks}", "task.sleep_s=0.75"])
    # nothing done yet: no expected time, so seed 0 is claimed within any budget left
    assert _run(path, "--seeds", "0", "--budget", "1m").exit_code == 0
    assert {v for k, v in _states(path).items() if k[1] == 0} == {"done"}
    done = [c for c in _cells(path) if c.state == "done" and c.condition != "_start"]
    assert all(c.trial.user_attrs["wall_s"] >= 3 for c in done)  # what "expected" reads
    # now each condition has a measured time (≥ 3 s): a 2 s budget claims nothing, not even
    # seed 1's start (it would fit, but none of its cells after it)
    short = _run(path, "--budget", "2s")
    assert short.exit_code == 0, short.output
    assert evaluated_seeds(marks, "0.5") == [0] and evaluated_seeds(marks, "1.0") == [0]
    assert "3 cell(s) left waiting" in short.output and "expected to take longer" in short.output
    assert {v for k, v in _states(path).items() if k[1] == 1} == {"waiting"}
    # what is left, by the done cells' times: seed 1's start and its two conditions
    assert "left: 3 cell(s) (shared starts included), ≈ 0.0 h of one worker" in short.output
    assert "no estimate yet" not in short.output
    assert _run(path, "--budget", "1h").exit_code == 0
    assert set(_states(path).values()) == {"done"}
    assert evaluated_seeds(marks, "2.0") == [0, 1]


def test_a_start_is_not_claimed_when_no_cell_of_its_seed_would_fit_after_it(toy):
    marks = toy / "marks"
    # the start is quick (no sleep); the conditions' runs each sleep 4 × 1 s
    slow = ["task.sleep_s=1.0"]
    path = write_compare(toy, seeds=2, shared_start=START, overrides=[f"task.marker={marks}"],
                         conditions={"low": {"recipe": "toy.yaml", "overrides": slow},
                                     "high": {"recipe": "toy.yaml",
                                              "overrides": ["reward.gain=2.0", *slow]}})
    assert _run(path, "--seeds", "0").exit_code == 0
    start = next(c for c in _cells(path) if c.condition == "_start")
    budget = start.trial.user_attrs["wall_s"] + 2.5  # the start fits, no condition after it
    result = _run(path, "--budget", f"{budget:.3f}")
    assert result.exit_code == 0, result.output
    assert _states(path)[("_start", 1)] == "waiting"
    assert evaluated_seeds(marks, "0.5") == [0]


@pytest.mark.parametrize("text, seconds", [("2h30m", 9000), ("90m", 5400), ("45s", 45),
                                           ("600", 600), ("1.5h", 5400), ("1h0m30s", 3630)])
def test_parse_budget(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5x", "h", "m30"])
def test_parse_budget_refuses_what_is_not_a_duration(text):
    with pytest.raises(ConfigError, match="expected a duration"):
        parse_budget(text)


def test_parse_seeds(toy):
    spec = load_compare(write_compare(toy, seeds=10))
    assert parse_seeds("0,2,5-7", spec) == {0, 2, 5, 6, 7}
    assert parse_seeds(" 3 ", spec) == {3}


def test_start_threads_runs_only_the_shared_starts_on_that_many_threads(toy):
    import torch

    marks = toy / "marks"
    before = torch.get_num_threads()
    path = write_compare(toy, seeds=2, shared_start=START, overrides=[f"task.marker={marks}"])
    ran = _run(path, "--start-threads", "2", "--seeds", "0")
    assert ran.exit_code == 0, ran.output
    assert (marks / "seed0-gain0.5-round0").read_text() == "2"      # the start
    assert (marks / "seed0-gain2.0-round0").read_text() == str(before)  # a condition
    assert torch.get_num_threads() == before
    start = next(c for c in _cells(path) if c.condition == "_start")
    assert start.trial.user_attrs["threads"] == 2
    assert "torch" in start.trial.user_attrs["machine"]  # what it ran on, for the record
    bad = _run(path, "--start-threads", "0")
    assert bad.exit_code == 2 and "--start-threads: expected a positive integer" in bad.output


def test_expected_time_is_the_conditions_median_or_else_every_conditions(toy):
    import optuna
    from advx.compare.cells import _expected_s

    spec = load_compare(write_compare(toy, seeds=3, shared_start=START))

    def done(condition: str, wall: float, evals: float | None = None):
        attrs = {"condition": condition, "seed": 0, "wall_s": wall,
                 **({"eval_s": evals} if evals is not None else {})}
        return optuna.trial.create_trial(value=0.0, user_attrs=attrs)

    # low: runs of 10, 30 and 20 s + 5 s of re-evaluations each; high: none done yet
    trials = [done("low", 10, 5), done("low", 30, 5), done("low", 20, 5), done("_start", 100)]
    assert _expected_s(spec, trials) == {"low": 25.0, "high": 25.0, "_start": 100.0}
    trials.append(done("high", 60))
    assert _expected_s(spec, trials)["high"] == 60.0
    assert _expected_s(spec, [done("_start", 100)]) == {"_start": 100.0}


def test_a_spent_budget_claims_nothing_and_says_what_has_no_estimate(toy):
    path = write_compare(toy, seeds=2, shared_start=START)
    result = _run(path, "--budget", "0s")
    assert result.exit_code == 0, result.output
    assert set(_states(path).values()) == {"waiting"}
    assert "left: 6 cell(s)" in result.output and "6 of them with no estimate yet" in result.output

"""The loop's promises (docs/reliability.md): one record stream, improve means in the round
record, checkpoint frequency, non-finite numbers, finite blow-ups, run statuses, signals,
the checkpoint retention default and evaluation's own random streams."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import advx
import pytest
from advx.errors import NonFiniteError
from advx.rundir import RunDir
from advx.runner import run_recipe
from core_toys import CALLS, ToyLogger

CORE_TESTS = Path(__file__).resolve().parent
ROOT = CORE_TESTS.parents[1]


def _run(recipe: Path, tmp_path: Path, *overrides: str, **kw):
    return run_recipe(recipe, list(overrides), runs_root=tmp_path / "runs", **kw)


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _no_time(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith("time/")}


class _Recorder:
    def __init__(self) -> None:
        self.records: list[dict] = []

    @advx.hookimpl
    def advx_on_step_end(self, run, round, step, metrics):
        self.records.append(dict(metrics))

    @advx.hookimpl
    def advx_on_round_end(self, run, round, metrics):
        self.records.append(dict(metrics))


# --------------------------------------------------------------------- one record stream


def test_logger_hook_and_run_folder_receive_identical_records(pm, toy_recipe, tmp_path):
    recorder = _Recorder()
    result = _run(toy_recipe, tmp_path, "loop.rounds=2", plugins=[recorder])
    logged = [record for _, record in ToyLogger.RECORDS]
    written = _records(result.run_dir)
    assert logged == recorder.records
    assert [_no_time(r) for r in logged] == [_no_time(r) for r in written]
    assert [r["kind"] for r in logged].count("step") == 6  # hooks get whole step records


def test_round_record_carries_the_improve_means(pm, toy_recipe, tmp_path):
    records = _records(_run(toy_recipe, tmp_path, "loop.rounds=2").run_dir)
    for round in (1, 2):
        steps = [r for r in records if r["kind"] == "step" and r["round"] == round]
        record = next(r for r in records if r["kind"] == "round" and r["round"] == round)
        for key in ("reward/total", "reward/kl", "reward/disc_prob", "optim/loss"):
            assert record[key] == pytest.approx(sum(s[key] for s in steps) / len(steps))
    assert "reward/total" not in records[0]  # round 0 has no improvement steps


def test_checkpoint_every_is_its_own_key(pm, toy_recipe, tmp_path):
    result = _run(toy_recipe, tmp_path, "loop.rounds=5", "loop.checkpoint_every=2",
                  "loop.eval_every=5", "loop.keep_checkpoints=0")
    assert RunDir(result.run_dir).checkpoint_rounds() == [0, 2, 4, 5]
    evaluated = [r["round"] for r in _records(result.run_dir)
                 if r["kind"] == "round" and r["evaluated"]]
    assert evaluated == [0, 5]


def test_keep_checkpoints_default_keeps_two_and_the_best(pm, toy_recipe, tmp_path):
    result = _run(toy_recipe, tmp_path, "loop.rounds=5", "loop.monitor_mode=min")
    best = result.summary["best"]["round"]
    assert RunDir(result.run_dir).checkpoint_rounds() == sorted({4, 5, best})
    everything = _run(toy_recipe, tmp_path, "loop.rounds=3", "loop.keep_checkpoints=0")
    assert RunDir(everything.run_dir).checkpoint_rounds() == [0, 1, 2, 3]


# --------------------------------------------------------------------- non-finite numbers


def test_nonfinite_reward_term_stops_the_run_before_the_update(pm, toy_recipe, tmp_path):
    with pytest.raises(NonFiniteError) as caught:
        _run(toy_recipe, tmp_path, "reward.nan_round=2", "reward.nan_step=2")
    message = str(caught.value)
    assert "reward/kl" in message and "round 2, step 2" in message
    run_dir = next((tmp_path / "runs" / "toy").iterdir())
    summary = _summary(run_dir)
    assert summary["status"] == "failed"
    assert summary["error"]["type"] == "NonFiniteError" and "reward/kl" in summary["error"][
        "message"]
    assert CALLS["optimizer.update"] == 3 + 1  # round 1's three, round 2's first: not the NaN
    steps = [r for r in _records(run_dir) if r["kind"] == "step"]
    assert all(s["reward/total"] is not None for s in steps)  # no null ever logged


def test_nonfinite_optimizer_loss_is_located_and_stops(pm, toy_recipe, tmp_path):
    with pytest.raises(NonFiniteError, match=r"toy loss is inf at round 1, step 3"):
        _run(toy_recipe, tmp_path, "optimizer.inf_loss_round=1", "optimizer.inf_loss_step=3")


def test_on_nonfinite_skip_counts_and_continues(pm, toy_recipe, tmp_path, caplog):
    result = _run(toy_recipe, tmp_path, "loop.on_nonfinite=skip", "reward.nan_round=1",
                  "reward.nan_step=2", "optimizer.inf_loss_round=2",
                  "optimizer.inf_loss_step=1")
    assert result.summary["status"] == "complete" and result.summary["nonfinite_skipped"] == 2
    records = _records(result.run_dir)
    skipped = [(r["round"], r["step"]) for r in records
               if r["kind"] == "step" and r.get("nonfinite/skipped")]
    assert skipped == [(1, 2), (2, 1)]
    rounds = {r["round"]: r for r in records if r["kind"] == "round"}
    assert [rounds[k]["nonfinite/skipped"] for k in (1, 2, 3)] == [1, 1, 0]
    assert CALLS["optimizer.update"] == 9 - 1  # the NaN reward never reached the optimizer
    assert "skipped an update" in caplog.text and "reward/kl" in caplog.text


def test_on_nonfinite_rejects_unknown_values(pm, toy_recipe, tmp_path):
    with pytest.raises(advx.ConfigError,
                       match=r"loop.on_nonfinite: 'ignore' is not one of stop, skip"):
        _run(toy_recipe, tmp_path, "loop.on_nonfinite=ignore")
    with pytest.raises(advx.ConfigError, match=r"loop.checkpoint_every: expected an integer"):
        _run(toy_recipe, tmp_path, "loop.checkpoint_every=0")


def test_finite_blowup_warns_in_log_and_summary(pm, toy_recipe, tmp_path, caplog):
    result = _run(toy_recipe, tmp_path, "classifier.loss_scale=1e9", "loop.rounds=1")
    assert result.summary["status"] == "complete"
    warnings = [w for w in result.summary["warnings"] if "classify/loss" in w]
    assert len(warnings) == 1 and "round 0" in warnings[0]  # once per key
    assert "classify/loss" in caplog.text


# --------------------------------------------------------------------- statuses and signals


def test_crash_is_recorded_as_failed_with_the_error(pm, toy_recipe, tmp_path):
    class Boom:
        @advx.hookimpl
        def advx_on_round_end(self, run, round, metrics):
            if round == 1:
                raise ZeroDivisionError("the plugin divided by zero")

    with pytest.raises(ZeroDivisionError):
        _run(toy_recipe, tmp_path, plugins=[Boom()])
    summary = _summary(next((tmp_path / "runs" / "toy").iterdir()))
    assert summary["status"] == "failed"
    assert summary["error"] == {"type": "ZeroDivisionError",
                                "message": "the plugin divided by zero"}


def test_keyboard_interrupt_is_interrupted_a_crash_is_not(pm, toy_recipe, tmp_path):
    class CtrlC:
        @advx.hookimpl
        def advx_on_step_end(self, run, round, step, metrics):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_recipe(toy_recipe, run_dir=tmp_path / "ctrl-c", plugins=[CtrlC()])
    summary = _summary(tmp_path / "ctrl-c")
    assert summary["status"] == "interrupted" and summary["error"]["type"] == "KeyboardInterrupt"


DRIVER = textwrap.dedent("""
    import os, signal, sys
    sys.path[:0] = [{core!r}, {plugins!r}, {tests!r}]
    os.environ["ADVX_LOAD_PLUGINS"] = "loggers"
    import advx, advx.plugins
    from advx.cli import app
    from core_toys import ToyPlugin

    class SelfTerm:
        @advx.hookimpl
        def advx_on_step_end(self, run, round, step, metrics):
            if round == 2 and step == 1:
                os.kill(os.getpid(), signal.SIGTERM)

    pm = advx.plugins.get_plugin_manager(reload=True)
    pm.register(ToyPlugin(), name="toys")
    pm.register(SelfTerm(), name="selfterm")
    app(sys.argv[1:], prog_name="advx")
""")


def test_sigterm_writes_an_interrupted_summary_and_exits_143(toy_recipe, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(core=str(ROOT / "core"), plugins=str(ROOT / "plugins"),
                                    tests=str(CORE_TESTS)))
    target = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(driver), "run", str(toy_recipe), "-q",
                           "--run-dir", str(target)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert "interrupted (SIGTERM)" in done.stderr and "Traceback" not in done.stderr
    summary = _summary(target)
    assert summary["status"] == "interrupted" and summary["error"]["type"] == "Terminated"
    assert RunDir(target).last_checkpoint() == 1


# --------------------------------------------------------------------- evaluation RNG


def test_evaluation_frequency_does_not_change_training(pm, toy_recipe, tmp_path):
    every = _records(_run(toy_recipe, tmp_path, "loop.rounds=4", "loop.eval_every=1").run_dir)
    second = _records(_run(toy_recipe, tmp_path, "loop.rounds=4", "loop.eval_every=2").run_dir)
    steps = lambda rs: [r for r in rs if r["kind"] == "step"]  # noqa: E731
    assert steps(every) == steps(second)
    shared = lambda rs: {r["round"]: {k: v for k, v in _no_time(r).items()  # noqa: E731
                                      if k != "evaluated"}
                         for r in rs if r["kind"] == "round" and r["evaluated"]}
    assert {k: v for k, v in shared(every).items() if k in (0, 2, 4)} == shared(second)


def test_evaluating_the_same_weights_twice_gives_the_same_numbers(pm, toy_recipe, tmp_path):
    from advx.build import build_components
    from advx.loop import Experiment
    from advx.run_info import RunInfo
    from advx.runner import prepare_recipe

    spec = prepare_recipe(toy_recipe, ["loop.rounds=1"])
    rundir = RunDir.create(tmp_path, "toy")
    components, _ = build_components(spec, rundir.path)
    info = RunInfo(name="toy", run_dir=rundir.path, recipe=spec.resolved, seed=spec.seed)
    experiment = Experiment(components, spec.loop, rundir, info, pm.hook)
    first = experiment.evaluate(1)
    components.generator.sample([advx.Prompt("")] * 5)  # training draws in between
    assert experiment.evaluate(1) == first
    assert "eval/frac_a" in first


# --------------------------------------------------------------------- exit codes (CLI)


def test_cli_exit_codes_nonfinite_2_interrupt_130_bug_1(pm, toy_recipe, tmp_path):
    from advx.cli import app
    from typer.testing import CliRunner

    runner = CliRunner()
    base = ["run", str(toy_recipe), "-q", "--runs-root", str(tmp_path)]
    result = runner.invoke(app, [*base, "reward.nan_round=1", "reward.nan_step=1"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "reward/kl is nan at round 1, step 1" in result.output

    class CtrlC:
        @advx.hookimpl
        def advx_on_step_end(self, run, round, step, metrics):
            raise KeyboardInterrupt

    class Bug:
        @advx.hookimpl
        def advx_on_step_end(self, run, round, step, metrics):
            raise ZeroDivisionError("bug")

    for plugin, code in ((CtrlC(), 130), (Bug(), 1)):
        pm.register(plugin)
        try:
            result = runner.invoke(app, base)
        finally:
            pm.unregister(plugin)
        assert result.exit_code == code, result.output

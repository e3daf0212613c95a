"""One ``test_hook_<name>`` per hook, and the meta-tests that keep hooks documented and tested
(in the style of datasette's test_docs.py / test_plugins.py)."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import advx
import pytest
from advx import hookspecs
from advx.plugins import get_registry
from advx.run_info import RunInfo
from advx.runner import run_recipe
from core_toys import ToyTask, ToyTaskConfig

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(name for name in hookspecs.__all__ if name.startswith("advx_"))


def _signature(name: str) -> str:
    """``name(arg: Type, ...) -> Return`` exactly as written in advx/hookspecs.py."""
    sig = inspect.signature(getattr(hookspecs, name))  # annotations are strings (PEP 563)
    args = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{name}({args}) -> {sig.return_annotation}"


# ------------------------------------------------------------------- meta-tests


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_exact_signature(hook):
    docs = (ROOT / "docs" / "writing-plugins.md").read_text()
    assert _signature(hook) in docs, f"docs/writing-plugins.md lacks `{_signature(hook)}`"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    assert re.search(rf"def test_hook_{hook}\b", tests), f"no test_hook_{hook} test"


def test_hookspecs_all_lists_every_hook():
    defined = {n for n, f in vars(hookspecs).items() if n.startswith("advx_") and callable(f)}
    assert defined == set(HOOKS)


# ------------------------------------------------------------------- registration hooks


@dataclass
class _Cfg:
    x: int = 1


def _factory(config, ctx):
    return ToyTask(ToyTaskConfig(), ctx)


def _register_one(pm, hook: str, kind: str):
    class One:
        pass

    def impl(register):
        register(f"one_{kind}", _factory, _Cfg)

    impl.__name__ = hook
    setattr(One, hook, staticmethod(advx.hookimpl(impl)))
    pm.register(One(), name=f"one-{kind}")
    spec = get_registry(pm).get(kind, f"one_{kind}")
    assert spec.kind == kind and spec.config_class is _Cfg and spec.plugin == f"one-{kind}"
    assert spec.factory is _factory


def test_hook_advx_register_generators(pm):
    _register_one(pm, "advx_register_generators", "generator")


def test_hook_advx_register_classifiers(pm):
    _register_one(pm, "advx_register_classifiers", "classifier")


def test_hook_advx_register_rewards(pm):
    _register_one(pm, "advx_register_rewards", "reward")


def test_hook_advx_register_optimizers(pm):
    _register_one(pm, "advx_register_optimizers", "optimizer")


def test_hook_advx_register_tasks(pm):
    _register_one(pm, "advx_register_tasks", "task")


def test_hook_advx_register_loggers(pm):
    _register_one(pm, "advx_register_loggers", "logger")
    assert {"console", "csv"} <= set(get_registry(pm).names("logger"))  # the built-ins


# ------------------------------------------------------------------- lifecycle hooks


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    @advx.hookimpl
    def advx_on_run_start(self, run):
        assert isinstance(run, RunInfo)
        self.calls.append(("start", run.name, run.resumed_from_round, run.run_dir))

    @advx.hookimpl
    def advx_on_step_end(self, run, round, step, metrics):
        self.calls.append(("step", round, step, dict(metrics)))

    @advx.hookimpl
    def advx_on_round_end(self, run, round, metrics):
        self.calls.append(("round", round, dict(metrics)))

    @advx.hookimpl
    def advx_on_run_end(self, run, summary):
        self.calls.append(("end", dict(summary)))


def _record(toy_recipe, tmp_path, *overrides):
    recorder = Recorder()
    result = run_recipe(toy_recipe, ["loop.rounds=2", *overrides], runs_root=tmp_path,
                        plugins=[recorder])
    return recorder.calls, result


def test_hook_advx_on_run_start(pm, toy_recipe, tmp_path):
    calls, result = _record(toy_recipe, tmp_path)
    assert calls[0] == ("start", "toy", None, result.run_dir)
    resumed = Recorder()
    run_recipe(None, ["loop.rounds=3"], resume=result.run_dir, plugins=[resumed])
    assert resumed.calls[0] == ("start", "toy", 2, result.run_dir)


def test_hook_advx_on_step_end(pm, toy_recipe, tmp_path):
    calls, _ = _record(toy_recipe, tmp_path)
    steps = [c for c in calls if c[0] == "step"]
    assert [(c[1], c[2]) for c in steps] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
    assert {"reward/total", "reward/disc_prob", "reward/kl", "optim/loss"} <= set(steps[0][3])


def test_hook_advx_on_round_end(pm, toy_recipe, tmp_path):
    calls, _ = _record(toy_recipe, tmp_path)
    rounds = [c for c in calls if c[0] == "round"]
    assert [c[1] for c in rounds] == [0, 1, 2]
    assert "eval/p_real" in rounds[0][2] and "sft/loss" in rounds[0][2]
    # round 1 ends after its three steps
    order = [(c[0], c[1]) for c in calls if c[0] in ("step", "round")]
    assert order.index(("round", 1)) > max(i for i, c in enumerate(order) if c == ("step", 1))


def test_hook_exception_stops_the_run(pm, toy_recipe, tmp_path):
    class Prune(Exception):
        pass

    class Pruner:
        @advx.hookimpl
        def advx_on_round_end(self, run, round, metrics):
            if round == 1:
                raise Prune

    pruner = Pruner()
    with pytest.raises(Prune):
        run_recipe(toy_recipe, runs_root=tmp_path, plugins=[pruner])
    assert not pm.is_registered(pruner)  # run plugins are unregistered afterwards


def test_hook_advx_on_run_end(pm, toy_recipe, tmp_path):
    calls, result = _record(toy_recipe, tmp_path)
    assert calls[-1][0] == "end"
    assert calls[-1][1]["status"] == "complete"
    assert calls[-1][1]["final"] == result.summary["final"]

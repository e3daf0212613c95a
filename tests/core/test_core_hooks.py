"""One ``test_hook_<name>`` per hook, and the meta-tests that keep hooks documented and tested
(in the style of datasette's test_docs.py / test_plugins.py)."""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass, fields
from pathlib import Path

import advx
import pytest
from advx import hookspecs
from advx.components import BASE_PROTOCOLS, CAPABILITIES, missing_members
from advx.loop import LoopConfig
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


def _hook_tests() -> dict[str, list[ast.FunctionDef]]:
    """Every ``test_hook_*`` function under tests/, by name, parsed."""
    found: dict[str, list[ast.FunctionDef]] = {}
    for path in (ROOT / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_hook_"):
                found.setdefault(node.name, []).append(node)
    return found


def _is_raises(expr: ast.expr) -> bool:
    return (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute)
            and expr.func.attr == "raises")


def _exercises(test: ast.FunctionDef, hook: str) -> bool:
    """The test's body names the hook in code (``pm.hook.<hook>(...)``, a hookimpl
    ``def <hook>``, a hook name handed to a helper or compared with a recorded call) and
    asserts something (an ``assert`` or a ``pytest.raises`` block)."""
    nodes = [node for node in ast.walk(test) if node is not test]
    names_hook = any(
        (isinstance(node, ast.Attribute) and node.attr == hook)
        or (isinstance(node, ast.Constant) and node.value == hook)
        or (isinstance(node, ast.FunctionDef) and node.name == hook)
        for node in nodes
    )
    asserts = any(
        isinstance(node, ast.Assert)
        or (isinstance(node, ast.With) and any(_is_raises(item.context_expr)
                                               for item in node.items))
        for node in nodes
    )
    return names_hook and asserts


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    tests = _hook_tests().get(f"test_hook_{hook}", [])
    assert tests, f"no test_hook_{hook} test"
    assert any(_exercises(t, hook) for t in tests), (
        f"test_hook_{hook} neither names the hook {hook!r} in code nor asserts: it must call "
        "or implement the hook and check the outcome"
    )


def test_hook_meta_test_rejects_an_empty_test():
    """``def test_hook_x(): pass`` (which the old regex accepted) does not count."""
    empty = ast.parse("def test_hook_advx_on_run_end():\n    pass\n").body[0]
    named_only = ast.parse("def test_hook_advx_on_run_end():\n"
                           "    'advx_on_run_end'\n").body[0]
    real = ast.parse("def test_hook_advx_on_run_end(pm):\n"
                     "    calls = pm.hook.advx_on_run_end(run=1, summary={})\n"
                     "    assert calls == []\n").body[0]
    assert not _exercises(empty, "advx_on_run_end")
    assert not _exercises(named_only, "advx_on_run_end")
    assert _exercises(real, "advx_on_run_end")


def _doc_row(doc: str, name: str) -> str:
    """The markdown table row of ``doc`` that starts with ``| `name` |``."""
    text = (ROOT / "docs" / doc).read_text()
    rows = [line for line in text.splitlines() if line.startswith(f"| `{name}` |")]
    assert rows, f"docs/{doc} has no table row for `{name}`"
    return rows[0]


@pytest.mark.parametrize(
    ("protocol", "doc"),
    [*((p, "writing-plugins.md") for p in BASE_PROTOCOLS.values()),
     *((p, "writing-plugins.md") for p in CAPABILITIES)],
    ids=lambda value: getattr(value, "__name__", value),
)
def test_every_protocol_and_capability_is_documented_with_its_members(protocol, doc):
    row = _doc_row(doc, protocol.__name__)
    for member in missing_members(object(), protocol):  # an object has none of them
        assert f"`{member}" in row, f"docs/{doc}: `{protocol.__name__}` row lacks `{member}`"


@pytest.mark.parametrize("protocol", CAPABILITIES, ids=lambda p: p.__name__)
def test_architecture_names_every_capability(protocol):
    contract = (ROOT / "docs" / "architecture.md").read_text()
    assert f"`{protocol.__name__}`" in contract


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
    return get_registry(pm).get(kind, f"one_{kind}")


def _registered_as(spec, kind: str) -> bool:
    return (spec.kind == kind and spec.config_class is _Cfg and spec.plugin == f"one-{kind}"
            and spec.factory is _factory)


def test_hook_advx_register_generators(pm):
    assert _registered_as(_register_one(pm, "advx_register_generators", "generator"), "generator")


def test_hook_advx_register_classifiers(pm):
    spec = _register_one(pm, "advx_register_classifiers", "classifier")
    assert _registered_as(spec, "classifier")


def test_hook_advx_register_rewards(pm):
    assert _registered_as(_register_one(pm, "advx_register_rewards", "reward"), "reward")


def test_hook_advx_register_optimizers(pm):
    assert _registered_as(_register_one(pm, "advx_register_optimizers", "optimizer"), "optimizer")


def test_hook_advx_register_tasks(pm):
    assert _registered_as(_register_one(pm, "advx_register_tasks", "task"), "task")


def test_hook_advx_register_loggers(pm):
    assert _registered_as(_register_one(pm, "advx_register_loggers", "logger"), "logger")
    assert {"console", "csv"} <= set(get_registry(pm).names("logger"))  # the built-ins


# ------------------------------------------------------------------- lifecycle hooks


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    @advx.hookimpl
    def advx_on_run_start(self, run):
        assert isinstance(run, RunInfo)
        self.calls.append(("advx_on_run_start", run.name, run.resumed_from_round, run.run_dir))

    @advx.hookimpl
    def advx_on_step_end(self, run, round, step, metrics):
        self.calls.append(("advx_on_step_end", round, step, dict(metrics)))

    @advx.hookimpl
    def advx_on_round_end(self, run, round, metrics):
        self.calls.append(("advx_on_round_end", round, dict(metrics)))

    @advx.hookimpl
    def advx_on_run_end(self, run, summary):
        self.calls.append(("advx_on_run_end", dict(summary)))


def _record(toy_recipe, tmp_path, *overrides):
    recorder = Recorder()
    result = run_recipe(toy_recipe, ["loop.rounds=2", *overrides], runs_root=tmp_path,
                        plugins=[recorder])
    return recorder.calls, result


def test_hook_advx_on_run_start(pm, toy_recipe, tmp_path):
    calls, result = _record(toy_recipe, tmp_path)
    assert calls[0] == ("advx_on_run_start", "toy", None, result.run_dir)
    resumed = Recorder()
    run_recipe(None, ["loop.rounds=3"], resume=result.run_dir, plugins=[resumed])
    assert resumed.calls[0] == ("advx_on_run_start", "toy", 2, result.run_dir)


def test_hook_advx_on_step_end(pm, toy_recipe, tmp_path):
    calls, _ = _record(toy_recipe, tmp_path)
    steps = [c for c in calls if c[0] == "advx_on_step_end"]
    assert [(c[1], c[2]) for c in steps] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
    assert {"reward/total", "reward/disc_prob", "reward/kl", "optim/loss"} <= set(steps[0][3])


def test_hook_advx_on_round_end(pm, toy_recipe, tmp_path):
    calls, _ = _record(toy_recipe, tmp_path)
    rounds = [c for c in calls if c[0] == "advx_on_round_end"]
    assert [c[1] for c in rounds] == [0, 1, 2]
    assert "eval/p_real" in rounds[0][2] and "sft/loss" in rounds[0][2]
    # round 1 ends after its three steps
    order = [(c[0], c[1]) for c in calls if c[0] != "advx_on_run_start"]
    last_step = max(i for i, c in enumerate(order) if c == ("advx_on_step_end", 1))
    assert order.index(("advx_on_round_end", 1)) > last_step


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
    assert calls[-1][0] == "advx_on_run_end"
    assert calls[-1][1]["status"] == "complete"
    assert calls[-1][1]["final"] == result.summary["final"]


# a code span that names a key: `key`, `block.key`, `key: value`, `key=value`, `key(...)`
KEY_SPAN = re.compile(r"(?:[\w.]+\.)?(\w+)\s*(?:[:=(\[].*)?$")


def _documented_keys() -> set[str]:
    """Every key the docs name in a code span (KEY_SPAN)."""
    docs = "\n".join(p.read_text() for p in sorted((ROOT / "docs").rglob("*.md")))
    return {m.group(1) for span in re.findall(r"`([^`\n]+)`", docs)
            if (m := KEY_SPAN.match(span))}


def _config_classes() -> dict[str, type]:
    """The built-in components' config dataclasses, and the ``loop:`` block's."""
    classes = {f"{spec.kind}:{spec.name}": spec.config_class for spec in get_registry().specs()
               if spec.distribution == "advx"}
    return {**classes, "loop": LoopConfig}


@pytest.mark.parametrize(("block", "config_class"), sorted(_config_classes().items()),
                         ids=lambda value: value if isinstance(value, str) else "")
def test_every_recipe_key_is_documented(block, config_class):
    """A key a user can set but no page names is a key nobody can find: each field of each
    built-in config class appears in docs/ as a code span (`key`, `block.key`, `key: v`)."""
    documented = _documented_keys()
    undocumented = [f.name for f in fields(config_class) if f.name not in documented]
    assert not undocumented, f"{block}: keys not named in docs/: {undocumented}"


def test_recipe_key_meta_test_needs_the_key_in_a_code_span():
    """The rule the meta-test reads the docs with: prose does not count, code spans do."""
    assert KEY_SPAN.match("loop.save_samples").group(1) == "save_samples"
    assert KEY_SPAN.match("every: 10").group(1) == "every"
    assert KEY_SPAN.match("a sentence with every word") is None

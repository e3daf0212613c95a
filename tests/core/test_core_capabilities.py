"""The contract checked at build time: base protocols per kind, capability protocols with
``require``, the augment phase's capability, ``BuildContext.build`` and ``device``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import advx
import pytest
from advx.build import build_components, check_task, resolve_device
from advx.components import (
    BASE_PROTOCOLS,
    CAPABILITIES,
    BuildContext,
    HasValueHead,
    ItemCatalogue,
    Reward,
    SupportsAugmentation,
    SupportsCompletion,
    missing_members,
    require,
)
from advx.errors import ConfigError, PluginError
from advx.plugins import ComponentSpec, Registry, get_registry
from advx.recipe import load_recipe, validate_recipe
from advx.runner import run_recipe
from core_toys import ToyGenerator, ToyGeneratorConfig, ToyTask, ToyTaskConfig


def _ctx(tmp_path: Path, **parts) -> BuildContext:
    return BuildContext(run_dir=tmp_path, seed=0, device="cpu", **parts)


# ------------------------------------------------------------------- require()


class _NoComplete:
    def sample(self):  # pragma: no cover - never called
        ...


def test_require_names_component_missing_methods_and_who_needs_them(tmp_path):
    ctx = _ctx(tmp_path)
    ctx.names["generator"] = "toy_unigram"
    with pytest.raises(PluginError) as err:
        require(_NoComplete(), SupportsCompletion, role=ctx.describe("generator"),
                needed_by="reward 'mc_rollout'")
    message = str(err.value)
    assert "generator 'toy_unigram' (_NoComplete)" in message
    assert "lacks complete()" in message and "reward 'mc_rollout' needs" in message
    assert "SupportsCompletion" in message


def test_require_accepts_a_component_with_the_capability():
    class WithHead:
        def value_parameters(self):
            return []

    require(WithHead(), HasValueHead, role="generator 'x'", needed_by="optimizer 'ppo'")


def test_data_members_and_non_callable_methods_count_as_missing():
    class HalfCatalogue:
        items = ("a",)
        item_of = None  # present but not callable: still missing

    assert missing_members(HalfCatalogue(), ItemCatalogue) == ["index", "item_of"]


def test_every_capability_is_runtime_checkable_and_declares_members():
    for protocol in (*BASE_PROTOCOLS.values(), *CAPABILITIES):
        assert getattr(protocol, "_is_runtime_protocol", False), protocol
        assert missing_members(object(), protocol), protocol


def test_reward_protocol_is_a_callable():
    assert missing_members(lambda rollout, ctx: None, Reward) == []
    assert missing_members(object(), Reward) == ["__call__"]


def test_slimmed_generator_and_task_no_longer_require_the_capabilities():
    gen = BASE_PROTOCOLS["generator"]
    task = BASE_PROTOCOLS["task"]
    assert not hasattr(gen, "complete") and not hasattr(gen, "save")
    assert not hasattr(task, "augment_prompts") and not hasattr(task, "synthetic_samples")


# ------------------------------------------------------------------- base protocols at build


class _Broken:
    """A 'generator' that forgot sample() and policy_outputs()."""

    def __init__(self, config, ctx) -> None:
        self.inner = ToyGenerator(ToyGeneratorConfig(), ctx)

    def __getattr__(self, name):
        if name in ("sample", "policy_outputs"):
            raise AttributeError(name)
        return getattr(self.inner, name)


class _BrokenPlugin:
    @advx.hookimpl
    def advx_register_generators(self, register):
        register("broken", _Broken, ToyGeneratorConfig)


def test_component_lacking_a_base_method_fails_at_build_time(pm, toy_recipe, tmp_path):
    pm.register(_BrokenPlugin(), name="broken")
    recipe = validate_recipe(load_recipe(toy_recipe, ["generator.name=broken"]),
                             get_registry(pm))
    with pytest.raises(PluginError) as err:
        build_components(recipe, tmp_path)
    message = str(err.value)
    assert "generator 'broken' (plugin 'broken')" in message
    assert "sample()" in message and "policy_outputs()" in message
    assert "Generator protocol" in message


class _PlainTask(ToyTask):
    """The toy task without the augment capability."""

    augment_prompts = None
    synthetic_samples = None


class _PlainTaskPlugin:
    @advx.hookimpl
    def advx_register_tasks(self, register):
        register("plain_task", _PlainTask, ToyTaskConfig)


def test_augment_capability_is_required_only_when_the_phase_runs(pm, toy_recipe, tmp_path):
    pm.register(_PlainTaskPlugin(), name="plain")
    registry = get_registry(pm)
    recipe = validate_recipe(load_recipe(toy_recipe, ["task.name=plain_task"]), registry)
    with pytest.raises(PluginError) as err:
        build_components(recipe, tmp_path)
    message = str(err.value)
    assert "task 'plain_task'" in message and "augment_prompts(), synthetic_samples()" in message
    assert "augment phase" in message and SupportsAugmentation.__name__ in message
    off = validate_recipe(load_recipe(toy_recipe, ["task.name=plain_task", "loop.augment=false"]),
                          registry)
    components, _ = build_components(off, tmp_path)
    assert isinstance(components.task, _PlainTask)
    result = run_recipe(toy_recipe, ["task.name=plain_task", "loop.augment=false",
                                     "loop.rounds=1"], runs_root=tmp_path)
    assert result.summary["status"] == "complete"


class _NoRLTask(ToyTask):
    rl_prompts = None


class _EvalOnlyTask:
    def __init__(self, config, ctx) -> None:
        pass

    def evaluate(self, components, stage):
        return {"eval/x": 1.0}


class _TaskPlugin:
    @advx.hookimpl
    def advx_register_tasks(self, register):
        register("no_rl", _NoRLTask, ToyTaskConfig)
        register("eval_only", _EvalOnlyTask, ToyTaskConfig)


def test_task_methods_are_required_per_running_phase(pm, toy_recipe, tmp_path):
    pm.register(_TaskPlugin(), name="tasks")
    registry = get_registry(pm)
    recipe = validate_recipe(load_recipe(toy_recipe, ["task.name=no_rl"]), registry)
    with pytest.raises(PluginError, match=r"task 'no_rl' \(_NoRLTask\) lacks rl_prompts\(\) "
                                          r"\(the improve phase\)"):
        build_components(recipe, tmp_path)
    no_rl = validate_recipe(load_recipe(toy_recipe, ["task.name=no_rl", "loop.rl_steps=0"]),
                            registry)
    build_components(no_rl, tmp_path)  # no improvement step: rl_prompts is never called
    # a task for an evaluation-only recipe (no generator, no classifier) needs only evaluate
    eval_only = validate_recipe(load_recipe(toy_recipe, [
        "task.name=eval_only", "generator=null", "classifier=null", "reward=null",
        "optimizer=null"]), registry)
    build_components(eval_only, tmp_path)
    with pytest.raises(PluginError, match="lacks classifier_train"):
        check_task(_EvalOnlyTask(None, None), ["pretrain_classifier"], "task 'eval_only'")


# ------------------------------------------------------------------- ctx.build


@dataclass
class _ConstCfg:
    value: float = 1.0


class _Const:
    def __init__(self, config: _ConstCfg, ctx: BuildContext) -> None:
        self.value, self.ctx = config.value, ctx

    def __call__(self, rollout, ctx):
        return self.value


def _registry(factory=_Const) -> Registry:
    registry = Registry()
    registry.add(ComponentSpec("reward", "const", factory, _ConstCfg, "test", "test-dist"))
    return registry


def test_ctx_build_uses_the_context_registry_and_validates_the_block(tmp_path):
    ctx = _ctx(tmp_path, registry=_registry())
    inner = ctx.build("reward", {"name": "const", "value": 2.5}, path="reward.wrapped")
    assert isinstance(inner, _Const) and inner.value == 2.5 and inner.ctx is ctx
    with pytest.raises(ConfigError, match=r"reward\.wrapped\.valu"):
        ctx.build("reward", {"name": "const", "valu": 2.5}, path="reward.wrapped")
    with pytest.raises(ConfigError, match=r"unknown reward 'cons'.*Did you mean 'const'"):
        ctx.build("reward", {"name": "cons"})


def test_ctx_build_checks_the_inner_component_protocol(tmp_path):
    ctx = _ctx(tmp_path, registry=_registry(lambda config, ctx: object()))
    with pytest.raises(PluginError, match=r"reward 'const' \(plugin 'test'\).*__call__"):
        ctx.build("reward", {"name": "const"})


def test_build_components_hands_its_registry_to_the_context(pm, toy_recipe, tmp_path):
    registry = get_registry(pm)
    recipe = validate_recipe(load_recipe(toy_recipe), registry)
    _, ctx = build_components(recipe, tmp_path, registry=registry)
    assert ctx.registry is registry
    assert ctx.describe("generator") == "generator 'toy_unigram'"
    assert ctx.describe("reward") == "reward 'toy_disc'"


# ------------------------------------------------------------------- device


@pytest.mark.parametrize("device", ["banana", "gpu", "cuda:x", "CPU", ""])
def test_unknown_device_is_a_config_error(device):
    with pytest.raises(ConfigError, match="expected auto, cpu, cuda, cuda:N or mps"):
        resolve_device(device)


def test_valid_devices_resolve():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")


# ------------------------------------------------------------------- no probing


ROOT = Path(__file__).resolve().parents[2]
CONSUMERS = ["plugins/advx_ppo", "plugins/advx_grpo", "plugins/advx_recsys",
             "plugins/advx_seqgan/mc_rollout.py"]


def test_consumers_declare_capabilities_instead_of_probing():
    """What one component needs of another is a declared capability checked at build time,
    never found out with ``hasattr``/``getattr``."""
    import ast

    for entry in CONSUMERS:
        path = ROOT / entry
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text())):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    assert node.func.id not in ("hasattr", "getattr"), (
                        f"{file.relative_to(ROOT)}:{node.lineno} probes with {node.func.id}()")



@pytest.mark.parametrize("quiet", [False, True])
def test_quiet_reaches_the_factories(pm, toy_recipe, tmp_path, quiet):
    """``advx run -q`` → ``run_recipe(quiet=True)`` → ``BuildContext.quiet`` in every factory."""
    from advx.runner import run_recipe

    seen: list[bool] = []

    class Probe:
        @advx.hookimpl
        def advx_register_loggers(self, register):
            def factory(config, ctx):
                seen.append(ctx.quiet)
                return _QuietLogger()

            register("quiet_probe", factory, _QuietConfig)

    pm.register(Probe(), name="quiet_probe")
    run_recipe(toy_recipe, ["loop.rounds=0", "loggers=[{name: quiet_probe}]"],
               run_dir=tmp_path / "run", quiet=quiet)
    assert seen == [quiet]


@dataclasses.dataclass
class _QuietConfig:
    pass


class _QuietLogger:
    def log(self, metrics, step):
        pass

    def close(self):
        pass

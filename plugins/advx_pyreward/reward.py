"""Reward ``function``: plain Python reward functions with TRL's signature, mixed by weight.

A reward function is any callable

    fn(prompts: list[str], completions: list[str], **kwargs) -> list[float]

the signature TRL's ``GRPOTrainer(reward_funcs=...)`` calls, so TRL-style reward functions
plug in unchanged (TRL's own factories too: ``path: trl.rewards:get_repetition_penalty_reward``
with ``args: {ngram_size: 2}``). It is called once per rollout with one entry per sampled row:

* ``prompts``: each row's prompt text (``Prompt.text``; "" for unconditional generation);
* ``completions``: each row's decoded response;
* ``completion_ids``: each row's generated token ids (padding removed), as TRL passes them;
* ``label``: each row's ``prompt.meta["label"]`` (None where absent);
* every other key of the rows' ``prompt.meta`` (the task's fields, e.g. ``product_id``), as a
  list with None where a row lacks it; TRL passes dataset columns the same way.

With several functions the sequence reward is ``Σ weight_i · fn_i`` paid on each row's last
token (:meth:`Rewards.at_end`), and every function's unweighted values are logged as their
own term ``reward/<name>``. As ``mc_rollout``'s ``wrapped`` reward the weighted sum is D, the
sequence reward its Monte-Carlo rollouts estimate.

Not supported from TRL: ``None`` in the returned list (TRL's "not applicable to this
sample"); return 0.0 there, or split the function. Conversational completions (lists of
messages) do not arise: advx completions are plain strings.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from advx.components import BuildContext, StepContext
from advx.errors import ConfigError, NonFiniteError, PluginError
from advx.rollout import Rewards, Rollout

__all__ = [
    "FunctionReward",
    "FunctionRewardConfig",
    "FunctionSpec",
    "build_function_reward",
    "call_kwargs",
    "load_function",
]

RESERVED = ("prompts", "completions", "completion_ids")
"""Argument names advx fills itself; ``prompt.meta`` keys of these names are not passed."""


@dataclass
class FunctionSpec:
    """One entry of ``functions:``.

    Attributes:
        path: ``module:function`` (``mypkg.rewards:brevity``; a dotted attribute after the colon
            such as ``mypkg.rewards:Scorer.score`` works) or ``path/to/file.py:function``.
        weight: its weight in the sum (may be negative: a penalty).
        name: the logged term, ``reward/<name>``; empty: the function's name.
        args: when given, ``path`` names a factory (TRL's ``get_repetition_penalty_reward``,
            ``get_soft_overlong_punishment``, ...) called once with these keyword arguments
            at build time; what it returns is the reward function.
    """

    path: str = ""
    weight: float = 1.0
    name: str = ""
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class FunctionRewardConfig:
    """The ``reward:`` block for ``name: function``. Give ``path`` (one function) or
    ``functions`` (a weighted mix), not both.

    Attributes:
        path: one function, ``module:function`` or ``file.py:function``.
        weight: that function's weight.
        term: that function's logged term name, ``reward/<term>``; empty: the function's name
            (``name:`` is taken: it names the reward, ``function``).
        args: keyword arguments for a factory named by ``path`` (see :class:`FunctionSpec`).
        functions: several functions, each ``{path, weight, name, args}``; the reward is the
            weighted sum and each one is logged as its own term.
    """

    path: str = ""
    weight: float = 1.0
    term: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    functions: list[FunctionSpec] = field(default_factory=list)


RewardFunction = Callable[..., Sequence[float]]


def _import_module(module: str, key: str, path: str) -> Any:
    if module.endswith(".py"):  # a file: no package, no PYTHONPATH needed
        file = Path(module)
        if not file.is_file():
            raise ConfigError(
                f"{key}: {path!r} names the file {str(file)!r}, which does not exist "
                f"(relative to {Path.cwd()}); fix the path"
            )
        name = f"advx_pyreward_file_{file.stem}_{abs(hash(file.resolve()))}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{key}: cannot load {str(file)!r} as a Python module")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded
        try:
            spec.loader.exec_module(loaded)
        except Exception as exc:
            del sys.modules[name]
            raise ConfigError(f"{key}: importing {str(file)!r} raised {exc!r}") from exc
        return loaded
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"{key}: cannot import module {module!r} of {path!r} ({exc}). Fix: install the "
            "package, put its folder on PYTHONPATH, or name the file instead "
            f"(path: path/to/{module.rsplit('.', 1)[-1]}.py:FUNCTION)"
        ) from exc
    except Exception as exc:
        raise ConfigError(f"{key}: importing module {module!r} raised {exc!r}") from exc


def load_function(path: str, key: str = "reward.path") -> RewardFunction:
    """The callable ``path`` names (``module:attr`` or ``file.py:attr``); ConfigError naming
    ``key`` and the fix when it cannot be found."""
    module, sep, attr = path.rpartition(":")
    if not sep or not module or not attr:
        raise ConfigError(
            f"{key}: {path!r} is not 'module:function'; write e.g. "
            "path: mypkg.rewards:brevity (or path: rewards.py:brevity)"
        )
    obj: Any = _import_module(module, key, path)
    for part in attr.split("."):
        if not hasattr(obj, part):
            found = sorted(  # what the module defines itself, not what it imported
                n for n, v in vars(obj).items()
                if not n.startswith("_") and callable(v)
                and getattr(v, "__module__", None) == getattr(obj, "__name__", None)
            )
            raise ConfigError(
                f"{key}: {module!r} has no attribute {attr!r}; callables there: "
                f"{', '.join(found[:20]) or '(none)'}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"{key}: {path!r} is a {type(obj).__name__}, not a function")
    return obj


def call_kwargs(rollout: Rollout) -> dict[str, list[Any]]:
    """What a reward function receives besides prompts and completions: per-row lists."""
    lengths = rollout.lengths.tolist()
    ids = rollout.response_ids.detach().cpu().tolist()
    kwargs: dict[str, list[Any]] = {
        "completion_ids": [row[:n] for row, n in zip(ids, lengths, strict=True)],
        "label": [p.meta.get("label") for p in rollout.prompts],
    }
    keys: dict[str, None] = {}
    for prompt in rollout.prompts:
        keys.update(dict.fromkeys(prompt.meta))
    for key in keys:
        if key not in RESERVED and key not in kwargs:
            kwargs[key] = [p.meta.get(key) for p in rollout.prompts]
    return kwargs


class FunctionReward:
    """``(rollout, ctx) -> Rewards`` from weighted reward functions; one term per function."""

    def __init__(self, functions: Sequence[tuple[str, float, RewardFunction]]) -> None:
        self.functions = list(functions)

    def _values(self, name: str, fn: RewardFunction, rollout: Rollout, ctx: StepContext | None,
                kwargs: dict[str, list[Any]]) -> list[float]:
        prompts = [p.text for p in rollout.prompts]
        values = fn(prompts=prompts, completions=list(rollout.texts), **kwargs)
        n = rollout.batch_size
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().reshape(-1).tolist()
        elif hasattr(values, "tolist") and not isinstance(values, (list, tuple)):
            values = values.tolist()  # numpy arrays
        if not isinstance(values, (list, tuple)):
            raise PluginError(
                f"reward function {name!r} returned a {type(values).__name__}; it must return a "
                f"list of {n} floats, one per completion"
            )
        if len(values) != n:
            raise PluginError(
                f"reward function {name!r} returned {len(values)} values for {n} completions; "
                "it must return one float per completion"
            )
        out: list[float] = []
        for i, value in enumerate(values):
            try:
                if isinstance(value, (str, bytes)):  # float("1") would pass a string through
                    raise TypeError
                number = float(value)
            except (TypeError, ValueError):
                hint = (" (TRL's None for 'not applicable' is not supported; return 0.0)"
                        if value is None else "")
                raise PluginError(
                    f"reward function {name!r} returned {value!r} for completion {i}, "
                    f"not a number{hint}"
                ) from None
            if not math.isfinite(number):
                error = NonFiniteError(
                    f"reward function {name!r} (completion {i}: {rollout.texts[i]!r})", number,
                    hint=f"make {name!r} return finite numbers",
                )
                raise error.at(ctx.round, ctx.step) if ctx is not None else error
            out.append(number)
        return out

    def __call__(self, rollout: Rollout, ctx: StepContext | None = None) -> Rewards:
        kwargs = call_kwargs(rollout)
        device = rollout.logprobs.device
        total = torch.zeros(rollout.batch_size, dtype=torch.float32, device=device)
        terms: dict[str, torch.Tensor] = {}
        for name, weight, fn in self.functions:
            values = torch.tensor(self._values(name, fn, rollout, ctx, kwargs),
                                  dtype=torch.float32, device=device)
            terms[name] = values
            total = total + weight * values
        rewards = Rewards.at_end(total, rollout)
        # not at_end(**terms): a term named after one of its parameters (a function called
        # `rollout`) would be a TypeError in the middle of training
        rewards.terms.update(terms)
        return rewards


def _specs(config: FunctionRewardConfig) -> list[tuple[str, FunctionSpec]]:
    """``(recipe key, spec)`` of every function the block names."""
    if config.path and config.functions:
        raise ConfigError(
            "reward (function): give either path (one function) or functions (a list), not both"
        )
    if config.functions and (config.args or config.term or config.weight != 1.0):
        raise ConfigError(
            "reward (function): with functions:, give weight, args and the term's name inside "
            "each entry "
            "(functions: [{path: ..., weight: ..., name: ..., args: {...}}])"
        )
    if config.path:
        spec = FunctionSpec(config.path, config.weight, config.term, dict(config.args))
        return [("reward.path", spec)]
    if config.functions:
        return [(f"reward.functions.{i}.path", spec) for i, spec in enumerate(config.functions)]
    raise ConfigError(
        "reward (function) needs path: module:function, or functions: [{path: ..., weight: ...}]"
    )


def build_function_reward(config: FunctionRewardConfig, ctx: BuildContext) -> FunctionReward:
    """Import every function now, so a wrong path fails before any training."""
    functions: list[tuple[str, float, RewardFunction]] = []
    for key, spec in _specs(config):
        if not spec.path:
            raise ConfigError(f"{key} is empty; write e.g. path: mypkg.rewards:brevity")
        if not math.isfinite(spec.weight):
            raise ConfigError(f"{key.removesuffix('.path')}.weight must be finite")
        fn = load_function(spec.path, key)
        if spec.args:
            try:
                fn = fn(**spec.args)
            except Exception as exc:
                raise ConfigError(
                    f"{key}: calling {spec.path} with args {dict(spec.args)} raised {exc!r}"
                ) from exc
            if not callable(fn):
                raise ConfigError(
                    f"{key}: {spec.path}(**args) returned a {type(fn).__name__}, not a "
                    "function; drop args: if the path names the reward function itself"
                )
        name = spec.name or getattr(fn, "__name__", "") or spec.path.rpartition(":")[2]
        if name == "total":
            raise ConfigError(f"{key}: the term name 'total' is the summed reward's; set name:")
        if any(name == other for other, _, _ in functions):
            raise ConfigError(
                f"{key}: two reward functions are both named {name!r}; give one a name:"
            )
        functions.append((name, float(spec.weight), fn))
    return FunctionReward(functions)

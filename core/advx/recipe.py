"""Recipes: YAML through omegaconf, ``key=value`` overrides, per-component validation.

A recipe names one component per block (``task:``, ``generator:``, ``classifier:``,
``reward:``, ``optimizer:``) with ``name:``; the block's other keys are checked against the
config dataclass the component's plugin registered, so a typo or a wrong type is reported with
its dotted path, the expected type and the allowed keys, before anything is built.

    name: ppo_cls_loss
    description: one line shown by `advx recipes`
    seed: 0
    device: cpu                      # cpu | cuda | cuda:1 | auto
    task:       {name: product_relevance, preset: demo}
    generator:  {name: seq2seq, model: tiny}
    reward:     {name: cls_loss, alpha: "${loop.rounds}"}     # interpolation is resolved
    loggers:    [{name: csv}]        # or [csv]
    loop:       {rounds: 4, rl_steps: 20}                      # advx.loop.LoopConfig

Any component block may be absent or ``null``; the loop then skips the phases that need it.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import (
    ConfigKeyError,
    MissingMandatoryValue,
    OmegaConfBaseException,
    ValidationError,
)

from advx.accel import parse_precision
from advx.errors import ConfigError, UnknownKeyError, did_you_mean
from advx.loop import LoopConfig
from advx.plugins import ComponentSpec, Registry

__all__ = [
    "COMPONENT_KINDS",
    "TOP_LEVEL_KEYS",
    "ComponentBlock",
    "Recipe",
    "apply_overrides",
    "dotted",
    "import_plugins",
    "load_recipe",
    "override",
    "overrides_from",
    "plain_value",
    "recipe_description",
    "recipe_file",
    "validate_recipe",
    "validate_run_name",
]

SEED_RANGE = (0, 2**63 - 1)
"""Seeds torch, numpy and python accept alike (torch takes a signed 64-bit integer)."""

COMPONENT_KINDS = ("task", "generator", "classifier", "reward", "optimizer")
"""Single-component blocks, in build order (loggers, a list, are built last)."""

TOP_LEVEL_KEYS = {
    "name": "str: the run's name (default: the file's stem); runs go to runs/<name>/",
    "description": "str: one line shown by `advx recipes`",
    "seed": "int: seeds python, numpy and torch, 0 <= seed < 2**63 (default 0)",
    "device": "str: cpu | cuda | cuda:N | auto (default cpu)",
    "precision": "str: fp32 | bf16 | fp16, mixed precision through accelerate (default fp32; "
                 "fp16 needs CUDA; see docs/scaling.md)",
    "task": "component block {name: ..., ...}",
    "generator": "component block",
    "classifier": "component block",
    "reward": "component block",
    "optimizer": "component block",
    "loggers": "list of logger blocks, e.g. [{name: csv}] or [csv]",
    "loop": "advx.loop.LoopConfig keys",
}


@dataclass
class ComponentBlock:
    """One validated component block: which registered component, and its typed config."""

    kind: str
    spec: ComponentSpec
    config: Any


@dataclass
class Recipe:
    """A validated recipe, ready to build.

    Attributes:
        name, description, seed, device, precision: the top-level keys.
        loop: the typed ``loop:`` block.
        components: kind -> block for each present single-component block.
        loggers: the logger blocks, in order.
        resolved: the whole recipe as a plain dict, interpolations resolved and every
            component's defaults filled in (what ``recipe.yaml`` in the run directory holds).
    """

    name: str
    description: str
    seed: int
    device: str
    loop: LoopConfig
    precision: str = "fp32"
    components: dict[str, ComponentBlock] = field(default_factory=dict)
    loggers: list[ComponentBlock] = field(default_factory=list)
    resolved: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- loading


def load_recipe(
    path: str | Path | DictConfig, overrides: Sequence[str] = ()
) -> DictConfig:
    """Read a recipe file (or take a DictConfig) and apply ``key=value`` overrides.

    Interpolations are kept unresolved here (so an override of ``a`` moves ``${a}``);
    :func:`validate_recipe` resolves them. ``name`` defaults to the file's stem.
    """
    if isinstance(path, DictConfig):
        cfg = path.copy()
    else:
        cfg = _read_yaml(Path(path))
        if "name" not in cfg or cfg.get("name") is None:
            cfg.name = Path(path).stem
    return apply_overrides(cfg, overrides)


def _read_yaml(path: Path) -> DictConfig:
    if not path.exists():
        raise ConfigError(f"recipe file not found: {path} (`advx recipes` lists recipes/)")
    if path.is_dir():
        raise ConfigError(f"recipe path is a directory, not a YAML file: {path}")
    try:
        cfg = OmegaConf.load(path)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"recipe {path} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as "
            "UTF-8 YAML"
        ) from exc
    except OSError as exc:
        if exc.errno is None:  # omegaconf's IOError for a file holding one number or boolean
            raise ConfigError(f"recipe {path} must be a YAML mapping of keys (name:, task:, "
                              f"...), not a {_first_line(exc).rsplit(' ', 1)[-1]}") from exc
        raise ConfigError(f"cannot read recipe {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"malformed YAML at {where}: {problem}") from exc
    except OmegaConfBaseException as exc:  # e.g. a file holding one number
        raise ConfigError(f"recipe {path} must be a YAML mapping of keys (name:, task:, ...): "
                          f"{_first_line(exc)}") from exc
    if cfg is None or isinstance(cfg, ListConfig):
        raise ConfigError(f"recipe {path} must be a YAML mapping of keys (name:, task:, ...)")
    if not cfg:
        raise ConfigError(f"recipe {path} is empty: a recipe needs at least a task: block "
                          "(see `advx recipes` for examples)")
    return cfg


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """Merge ``dotted.key=value`` strings (values parsed as YAML) into a copy of ``cfg``."""
    cfg = cfg.copy()
    for override in overrides:
        key, sep, _ = override.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"override {override!r} is not of the form key=value (e.g. reward.alpha=0.5)"
            )
        try:
            patch = OmegaConf.from_dotlist([override])
            cfg = OmegaConf.merge(cfg, patch)  # type: ignore[assignment]
        except (OmegaConfBaseException, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot apply override {override!r}: {_first_line(exc)}") from exc
    return cfg


def recipe_description(path: Path) -> str:
    """The one-line ``description:`` of a recipe file ('' when absent or unreadable)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except UnicodeDecodeError:
        return "(not UTF-8)"
    except (OSError, yaml.YAMLError):
        return "(malformed YAML)"
    if not isinstance(data, dict):
        return ""
    return " ".join(str(data.get("description") or "").split())


# --------------------------------------------------------------------------- validation


def validate_recipe(cfg: DictConfig, registry: Registry) -> Recipe:
    """Resolve interpolations and check every block against its registered config class.

    Raises :class:`ConfigError` naming the dotted path of the first problem found.
    """
    plain = _resolve(cfg)
    unknown = [key for key in plain if key not in TOP_LEVEL_KEYS]
    if unknown:
        raise UnknownKeyError(
            _unknown_key_message(unknown[0], "", "the recipe", TOP_LEVEL_KEYS)
        )

    name = validate_run_name(_scalar(plain, "name", str, "recipe"))
    description = _scalar(plain, "description", str, "")
    seed = _scalar(plain, "seed", int, 0)
    if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise ConfigError(f"seed: expected an integer in [0, 2**63 - 1], got {seed}")
    device = _scalar(plain, "device", str, "cpu")
    precision = parse_precision(_scalar(plain, "precision", str, "fp32")).value
    if plain.get("task") is None:
        raise ConfigError(
            "task: required; every recipe names the task it trains on, e.g. "
            f"task: {{name: {(registry.names('task') or ['<task>'])[0]}}}. "
            f"Available tasks: {', '.join(registry.names('task')) or 'none installed'}."
        )

    loop_block = plain.get("loop") or {}
    if not isinstance(loop_block, dict):
        raise ConfigError(f"loop: expected a mapping of LoopConfig keys, got {loop_block!r}")
    loop = _typed_config(loop_block, LoopConfig, "loop", "loop")
    _check_counts(loop)

    if loop.augment_min_label_p > 0 and loop.augment and plain.get("classifier") is None:
        raise ConfigError(f"loop.augment_min_label_p={loop.augment_min_label_p} filters the "
                          "synthetic samples with the classifier, and the recipe has no "
                          "classifier block; add one or set loop.augment_min_label_p=0")
    recipe = Recipe(name=name, description=description, seed=seed, device=device, loop=loop,
                    precision=precision)
    resolved: dict[str, Any] = {
        "name": name, "description": description, "seed": seed, "device": device
    }
    if precision != "fp32":  # absent = fp32: recipe.yaml of a plain run stays as it was
        resolved["precision"] = precision
    for kind in COMPONENT_KINDS:
        block = plain.get(kind)
        if block is None:
            resolved[kind] = None
            continue
        recipe.components[kind] = _component(block, kind, kind, registry)
        resolved[kind] = _block_dict(recipe.components[kind])

    loggers = plain.get("loggers") or []
    if not isinstance(loggers, list):
        raise ConfigError(f"loggers: expected a list such as [{{name: csv}}], got {loggers!r}")
    for index, block in enumerate(loggers):
        block = {"name": block} if isinstance(block, str) else block
        recipe.loggers.append(_component(block, "logger", f"loggers.{index}", registry))
    resolved["loggers"] = [_block_dict(b) for b in recipe.loggers]
    resolved["loop"] = plain_value(dataclasses.asdict(loop))
    recipe.resolved = resolved
    return recipe


_MINIMUM = {"rounds": 0, "rl_steps": 0, "d_steps": 0, "pretrain_d_steps": 0,
            "keep_checkpoints": 0, "batch_size": 1, "samples_per_prompt": 1,
            "augment_samples": 1, "eval_every": 1}


def validate_run_name(name: str) -> str:
    """``name`` if it can name a folder under the runs root, else a ConfigError.

    The name becomes ``runs/<name>/``: a separator or ``..`` would write the run elsewhere.
    """
    bad = (not name.strip() or name in (".", "..") or any(sep in name for sep in "/\\")
           or any(not ch.isprintable() for ch in name))
    if bad:
        raise ConfigError(
            f"name: {name!r} cannot name a run folder (runs/<name>/): use letters, digits, "
            "'-', '_' or '.', with no path separator and not '.' or '..'"
        )
    return name


def plain_value(value: Any) -> Any:
    """``value`` with every Enum member replaced by its value (for recipe.yaml and JSON)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    return value


def _check_counts(loop: LoopConfig) -> None:
    for key, least in _MINIMUM.items():
        if getattr(loop, key) < least:
            raise ConfigError(f"loop.{key}: expected an integer >= {least}, "
                              f"got {getattr(loop, key)}")
    if loop.temperature <= 0:
        raise ConfigError(f"loop.temperature: expected a number > 0, got {loop.temperature}")


def _resolve(cfg: DictConfig) -> dict[str, Any]:
    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        where = f" at {key}" if key else ""
        raise ConfigError(f"cannot resolve interpolation{where}: {_first_line(exc)}") from exc
    assert isinstance(plain, dict)
    return plain


def _scalar(plain: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = plain.get(key, default)
    if value is None:
        return default
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{key}: expected int, got {value!r}")
    if kind is str and not isinstance(value, str):
        return str(value)
    return value


def _component(block: Any, kind: str, path: str, registry: Registry) -> ComponentBlock:
    if not isinstance(block, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'name:' key, got {block!r}")
    if "name" not in block or not isinstance(block["name"], str):
        known = ", ".join(registry.names(kind)) or "none installed"
        raise ConfigError(f"{path}.name: required; names the {kind} to use. Available: {known}.")
    spec = registry.get(kind, block["name"])
    fields = {f.name for f in dataclasses.fields(spec.config_class)}
    values = {k: v for k, v in block.items() if k != "name" or "name" in fields}
    what = f"{kind} {spec.name!r} ({spec.config_class.__name__})"
    return ComponentBlock(kind, spec, _typed_config(values, spec.config_class, path, what))


def _block_dict(block: ComponentBlock) -> dict[str, Any]:
    return {"name": block.spec.name, **plain_value(dataclasses.asdict(block.config))}


def _typed_config(values: dict[str, Any], config_class: type, path: str, what: str) -> Any:
    """``values`` validated against ``config_class`` via omegaconf, as an instance of it."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(config_class), OmegaConf.create(values))
        return OmegaConf.to_object(merged)
    except ConfigKeyError as exc:
        key = str(exc.full_key or exc.key)
        parent, _, leaf = key.rpartition(".")
        allowed = _field_types(_class_at(config_class, parent))
        owner = what if not parent else f"{what} at {path}.{parent}"
        raise UnknownKeyError(
            _unknown_key_message(leaf, _join(path, parent), owner, allowed)
        ) from exc
    except MissingMandatoryValue as exc:
        key = _join(path, str(exc.full_key or exc.key))
        raise ConfigError(f"{key}: required by {what} but not given in the recipe") from exc
    except ValidationError as exc:
        key = str(exc.full_key or exc.key or "")
        got = _value_at(values, key)
        choices = _enum_at(config_class, key)
        if choices is not None:  # string choices are Enum fields: one message for all of them
            raise ConfigError(
                f"{_join(path, key)}: {got!r} is not one of {', '.join(choices)} ({what})"
            ) from exc
        expected = _expected_type(config_class, key)
        raise ConfigError(
            f"{_join(path, key)}: expected {expected}, got {got!r} "
            f"({type(got).__name__}) for {what}"
        ) from exc
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{path}: invalid block for {what}: {_first_line(exc)}") from exc
    except ConfigError as exc:  # raised by the config class's own __post_init__ checks
        raise ConfigError(f"{path}: {exc} ({what})") from exc
    except (ValueError, TypeError) as exc:  # likewise, in the plain Python spelling
        raise ConfigError(f"{path}: {exc} ({what})") from exc


def _enum_at(config_class: type, dotted: str) -> list[str] | None:
    """The member names of the Enum field at ``dotted`` (None when it is not an Enum)."""
    parent, _, leaf = dotted.rpartition(".")
    owner = _class_at(config_class, parent)
    tp = _hints(owner).get(leaf) if owner is not None else None
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return [member.name for member in tp]
    return None


def _unknown_key_message(key: str, parent: str, owner: str, allowed: dict[str, str]) -> str:
    dotted = _join(parent, key)
    hint = did_you_mean(key, allowed)
    listing = ", ".join(f"{name} ({kind})" for name, kind in allowed.items()) or "none"
    return f"unknown key {dotted!r} in {owner}.{hint} Allowed keys: {listing}."


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return " | ".join(member.name for member in tp)
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _hints(config_class: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(config_class)
    except Exception:  # unresolvable forward references: fall back to the raw annotations
        return {f.name: f.type for f in dataclasses.fields(config_class)}


def _field_types(config_class: type | None) -> dict[str, str]:
    if config_class is None or not dataclasses.is_dataclass(config_class):
        return {}
    hints = _hints(config_class)
    return {f.name: _type_name(hints.get(f.name, f.type)) for f in dataclasses.fields(config_class)}


def _class_at(config_class: type, dotted: str) -> type | None:
    """The (nested) dataclass type at ``dotted`` inside ``config_class``."""
    current: Any = config_class
    for part in filter(None, dotted.split(".")):
        if not dataclasses.is_dataclass(current):
            return None
        current = _hints(current).get(part)
    return current if dataclasses.is_dataclass(current) else None


def _expected_type(config_class: type, dotted: str) -> str:
    parent, _, leaf = dotted.rpartition(".")
    owner = _class_at(config_class, parent)
    if owner is None:
        return "a different type"
    return _type_name(_hints(owner).get(leaf, "a different type"))


def _value_at(values: Any, dotted: str) -> Any:
    for part in filter(None, dotted.split(".")):
        if isinstance(values, dict):
            values = values.get(part)
        elif isinstance(values, list) and part.isdigit() and int(part) < len(values):
            values = values[int(part)]
        else:
            return values
    return values


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ----------------------------------------------------- files that point at recipes
# A sweep file and a compare file both name recipes, fixed overrides and extra plugin
# modules; these helpers read those three things the same way for both.


def recipe_file(recipe: str, relative_to: Path, at: str) -> Path:
    """The recipe ``recipe`` names, as given or relative to the folder of the file
    ``relative_to`` that names it; ConfigError at ``at`` listing what was tried."""
    candidates = [Path(recipe)]
    if not Path(recipe).is_absolute():
        candidates.append(relative_to.parent / recipe)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    tried = " and ".join(str(c) for c in candidates)
    raise ConfigError(f"{at}: file not found (tried {tried})")


def override(key: str, value: Any) -> str:
    """``key=value`` with the value written as YAML flow (JSON is valid YAML)."""
    return f"{key}={json.dumps(value)}"


def dotted(raw: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{loop: {rounds: 2}}`` and ``{loop.rounds: 2}`` both become ``{"loop.rounds": 2}``."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        key_path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(dotted(value, key_path + "."))
        else:
            flat[key_path] = value
    return flat


def overrides_from(raw: Any, at: str) -> list[str]:
    """Fixed overrides given as a mapping ``{reward.alpha: 0.5}`` or a list of
    ``'key=value'`` strings (None: none)."""
    if raw is None:
        return []
    if isinstance(raw, Mapping):
        return [override(k, v) for k, v in dotted(raw).items()]
    if isinstance(raw, (list, ListConfig)) and all(
            isinstance(item, str) and "=" in item for item in raw):
        return list(raw)
    raise ConfigError(f"{at}: expected a mapping {{reward.alpha: 0.5}} or a list of "
                      f"'key=value' strings, got {raw!r}")


def import_plugins(modules: Sequence[str], at: str = "plugins") -> list[Any]:
    """Extra plugin modules a sweep or compare file names, imported (each a pluggy plugin)."""
    plugins = []
    for name in modules:
        try:
            plugins.append(importlib.import_module(name))
        except ImportError as exc:
            raise ConfigError(f"{at}: cannot import {name!r}: {exc}") from exc
    return plugins

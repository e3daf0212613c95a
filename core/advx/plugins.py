"""Loading plugins and collecting the components they register.

Every plugin, the built-ins included, is found through the ``advx`` entry-point group:
an entry point names a module (or an instance) carrying hookimpls. ``ADVX_LOAD_PLUGINS``
(comma-separated entry-point names) restricts which are loaded; ``ADVX_TRACE_PLUGINS=1``
prints every hook call.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, is_dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from advx import hookspecs
from advx.errors import ConfigError, PluginError, did_you_mean

__all__ = [
    "KINDS", "AdvxPluginManager", "ComponentSpec", "Registry", "check_hook_names",
    "get_plugin_manager",
    "get_registry",
    "reset_plugin_manager",
]

ENTRY_POINT_GROUP = "advx"
KINDS = ("generator", "classifier", "reward", "optimizer", "task", "logger")
_PLURAL = {kind: f"{kind}s" for kind in KINDS}


@dataclass(frozen=True)
class ComponentSpec:
    """One registered component: where it comes from and how to build it."""

    kind: str
    name: str
    factory: Callable[..., Any]
    config_class: type
    plugin: str
    distribution: str


class Registry:
    """All components by kind and name, filled by the registration hooks."""

    def __init__(self) -> None:
        self._specs: dict[str, dict[str, ComponentSpec]] = {kind: {} for kind in KINDS}

    def add(self, spec: ComponentSpec) -> None:
        existing = self._specs[spec.kind].get(spec.name)
        if existing is not None:
            raise PluginError(
                f"{spec.kind} {spec.name!r} is registered twice: by plugin {existing.plugin!r} "
                f"(distribution {existing.distribution!r}) and by plugin {spec.plugin!r} "
                f"(distribution {spec.distribution!r}). Uninstall one, or restrict loading "
                f"with ADVX_LOAD_PLUGINS."
            )
        if not is_dataclass(spec.config_class):
            raise PluginError(
                f"plugin {spec.plugin!r} registered {spec.kind} {spec.name!r} with config class "
                f"{spec.config_class!r}, which is not a dataclass."
            )
        self._specs[spec.kind][spec.name] = spec

    def get(self, kind: str, name: str) -> ComponentSpec:
        """The spec for ``name``, or a ConfigError listing what exists and the closest name."""
        available = self._specs[kind]
        if name in available:
            return available[name]
        hint = did_you_mean(name, available)
        known = ", ".join(sorted(available)) or "none installed"
        raise ConfigError(f"unknown {kind} {name!r}.{hint} Available {_PLURAL[kind]}: {known}.")

    def names(self, kind: str) -> list[str]:
        return sorted(self._specs[kind])

    def specs(self, kind: str | None = None) -> list[ComponentSpec]:
        kinds = KINDS if kind is None else (kind,)
        return [self._specs[k][n] for k in kinds for n in sorted(self._specs[k])]


class AdvxPluginManager(pluggy.PluginManager):
    """pluggy's manager plus what advx knows about each loaded plugin.

    ``distributions`` maps an entry point's name to the distribution that installed it (shown
    by ``advx plugins`` and in clash messages); plugins registered in process have none.
    """

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.distributions: dict[str, str] = {}


def _allowlist(installed: Iterable[str]) -> set[str] | None:
    """The entry-point names ``ADVX_LOAD_PLUGINS`` allows (None: the variable is unset)."""
    raw = os.environ.get("ADVX_LOAD_PLUGINS")
    if raw is None:
        return None
    names = {name.strip() for name in raw.split(",") if name.strip()}
    known = sorted(set(installed))
    listing = ", ".join(known) or "none"
    if not names:
        raise PluginError(
            f"ADVX_LOAD_PLUGINS is set but names no plugin ({raw!r}); give comma-separated "
            f"entry-point names, or unset it to load every installed plugin. Installed: {listing}."
        )
    unknown = sorted(names - set(known))
    if unknown:
        hint = did_you_mean(unknown[0], known)
        raise PluginError(
            f"ADVX_LOAD_PLUGINS names {', '.join(map(repr, unknown))}, which no installed plugin "
            f"provides.{hint} Installed: {listing}."
        )
    return names


def _advx_entry_points() -> Iterable[EntryPoint]:
    return entry_points(group=ENTRY_POINT_GROUP)


def _distribution_name(entry_point: EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    return dist.name if dist is not None else "<unknown distribution>"


def _trace(pm: pluggy.PluginManager) -> None:
    def before(hook_name: str, hook_impls: list, kwargs: dict) -> None:
        plugins = ", ".join(impl.plugin_name for impl in hook_impls)
        print(f"[advx] {hook_name}({', '.join(kwargs)}) -> {plugins}", file=sys.stderr)

    def after(outcome: Any, hook_name: str, hook_impls: list, kwargs: dict) -> None:
        pass

    pm.add_hookcall_monitoring(before, after)


def _load_entry_points(pm: AdvxPluginManager) -> None:
    found = list(_advx_entry_points())
    allow = _allowlist(ep.name for ep in found)
    for entry_point in found:
        if allow is not None and entry_point.name not in allow:
            continue
        if pm.has_plugin(entry_point.name):
            continue
        dist = _distribution_name(entry_point)
        try:
            plugin = entry_point.load()
        except Exception as exc:
            raise PluginError(
                f"plugin {entry_point.name!r} (distribution {dist!r}, {entry_point.value}) "
                f"failed to import: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            pm.register(plugin, name=entry_point.name)
        except pluggy.PluginValidationError as exc:  # e.g. a hookimpl with wrong arguments
            raise PluginError(
                f"plugin {entry_point.name!r} (distribution {dist!r}) does not match advx's "
                f"hook specifications: {exc}"
            ) from exc
        pm.distributions[entry_point.name] = dist


def check_hook_names(pm: pluggy.PluginManager) -> None:
    """A PluginError for any hook implementation no specification declares.

    pluggy keeps such implementations without complaint (they are simply never called), so a
    misspelt ``advx_register_rewardz`` would register nothing; ``check_pending`` finds them.
    """
    try:
        pm.check_pending()
    except pluggy.PluginValidationError:
        specs = [n for n in vars(pm.hook) if not n.startswith("_") and
                 getattr(pm.hook, n).has_spec()]
        for name in sorted(vars(pm.hook)):
            hook = getattr(pm.hook, name)
            if name.startswith("_") or hook.has_spec():
                continue
            for impl in hook.get_hookimpls():
                if not impl.optionalhook:
                    raise PluginError(
                        f"plugin {impl.plugin_name!r} implements {name!r}, which is not an advx "
                        f"hook.{did_you_mean(name, specs)} Hooks: {', '.join(sorted(specs))}."
                    ) from None
        raise


_PM: pluggy.PluginManager | None = None


def get_plugin_manager(reload: bool = False) -> pluggy.PluginManager:
    """The process-wide plugin manager with every allowed entry point loaded."""
    global _PM
    if _PM is None or reload:
        pm = AdvxPluginManager()
        if os.environ.get("ADVX_TRACE_PLUGINS"):
            _trace(pm)
        _load_entry_points(pm)
        check_hook_names(pm)
        _PM = pm
    return _PM


def reset_plugin_manager() -> None:
    """Forget the process-wide manager: the next :func:`get_plugin_manager` loads the allowed
    entry points again (after ``ADVX_LOAD_PLUGINS`` changed, or a plugin was installed)."""
    global _PM
    _PM = None


def _call_register_hook(pm: pluggy.PluginManager, kind: str, registry: Registry) -> None:
    hook = getattr(pm.hook, f"advx_register_{_PLURAL[kind]}")
    distributions = pm.distributions if isinstance(pm, AdvxPluginManager) else {}
    for impl in hook.get_hookimpls():
        plugin_name = impl.plugin_name
        dist = distributions.get(plugin_name, "<registered in process>")

        def register(name: str, factory: Callable[..., Any], config_class: type) -> None:
            registry.add(ComponentSpec(kind, name, factory, config_class, plugin_name, dist))  # noqa: B023

        if os.environ.get("ADVX_TRACE_PLUGINS"):  # called directly, not through pm.hook
            print(f"[advx] {hook.name}(register) -> {plugin_name}", file=sys.stderr)
        try:
            impl.function(register=register)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin {plugin_name!r} (distribution {dist!r}) failed in "
                f"advx_register_{_PLURAL[kind]}: {type(exc).__name__}: {exc}"
            ) from exc


def get_registry(pm: pluggy.PluginManager | None = None) -> Registry:
    """Call every registration hook and return the filled registry."""
    pm = pm or get_plugin_manager()
    check_hook_names(pm)  # plugins registered in process since the manager was made, too
    registry = Registry()
    for kind in KINDS:
        _call_register_hook(pm, kind, registry)
    return registry

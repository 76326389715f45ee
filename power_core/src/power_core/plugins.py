"""Plugin discovery and the typed registries the rest of the core reads.

Plugins are found through the ``a3s_power`` entry-point group; the core's own defaults
register through it too. Core code never calls ``pm.hook.*`` directly: it asks a
:class:`PluginRegistry` for backends, surfaces, stores, sources or commands, each collected
once through the register-callback hooks, with duplicate names rejected.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

from power_core import hookspecs
from power_core.errors import PluginError

if TYPE_CHECKING:
    from cleo.commands.command import Command

    from power_core.engine import Backend
    from power_core.server.surface import ApiSurface
    from power_core.sources import ModelSource
    from power_core.store.base import StoreFactory

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "a3s_power"
DISABLE_ENV = "A3S_POWER_DISABLE_PLUGINS"

T = TypeVar("T")


@dataclass
class PluginInfo:
    """One discovered plugin, for ``a3s-power plugins``."""

    name: str
    distribution: str
    version: str
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    disabled: bool = False


def disabled_plugin_names(environ: dict[str, str] | None = None) -> set[str]:
    """Plugin names listed in ``A3S_POWER_DISABLE_PLUGINS`` (comma separated)."""
    raw = (environ if environ is not None else os.environ).get(DISABLE_ENV, "")
    return {part.strip() for part in raw.split(",") if part.strip()}


class PluginRegistry:
    """Loads plugins once and hands out what they registered, by kind."""

    def __init__(self, pm: pluggy.PluginManager, infos: list[PluginInfo]) -> None:
        self._pm = pm
        self.infos = infos
        self._owners: dict[int, str] = {}
        self._cache: dict[str, Any] = {}

    # ------------------------------------------------------------------ discovery
    @classmethod
    def discover(
        cls,
        *,
        extra_modules: Iterable[ModuleType] = (),
        environ: dict[str, str] | None = None,
        autoload: bool = True,
    ) -> PluginRegistry:
        """Load every plugin of the entry-point group except disabled ones.

        A plugin that fails to import, or implements a hook that does not exist, is reported
        by name in :attr:`infos` and left out; the others still load.
        ``extra_modules`` are registered as well (tests and embedding applications).
        """
        pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        pm.add_hookspecs(hookspecs)
        disabled = disabled_plugin_names(environ)
        infos: list[PluginInfo] = []
        eps: list[EntryPoint] = list(entry_points(group=ENTRY_POINT_GROUP)) if autoload else []
        for ep in sorted(eps, key=lambda e: e.name):
            dist = ep.dist
            info = PluginInfo(
                name=ep.name,
                distribution=dist.metadata["Name"] if dist is not None else "?",
                version=dist.version if dist is not None else "?",
            )
            infos.append(info)
            if ep.name in disabled:
                info.disabled = True
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take the CLI or server down
                info.error = f"failed to import {ep.value}: {type(exc).__name__}: {exc}"
                log.warning("plugin %s: %s", ep.name, info.error)
                continue
            cls._register_checked(pm, module, ep.name, info)
        for module in extra_modules:
            info = PluginInfo(name=module.__name__, distribution="(in-process)", version="")
            infos.append(info)
            cls._register_checked(pm, module, module.__name__, info)
        return cls(pm, infos)

    @staticmethod
    def _register_checked(
        pm: pluggy.PluginManager, module: object, name: str, info: PluginInfo
    ) -> None:
        try:
            pm.register(module, name=name)
            # a misspelt hook name in a plugin is an error, not silence
            pm.check_pending()
        except (pluggy.PluginValidationError, ValueError) as exc:
            if pm.is_registered(module):
                pm.unregister(module)
            info.error = f"invalid plugin: {exc}"
            log.warning("plugin %s: %s", name, info.error)
            return
        info.hooks = sorted(impl.name for impl in pm.get_hookcallers(module) or [])

    # ------------------------------------------------------------------ collection
    def _collect(self, hook_name: str, name_of: Callable[[Any], str], kind: str) -> dict[str, Any]:
        if hook_name in self._cache:
            return dict(self._cache[hook_name])
        items: dict[str, Any] = {}
        owners: dict[str, str] = {}
        hook = getattr(self._pm.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):  # registration order
            plugin_name = impl.plugin_name

            def register(*args: Any, _plugin: str = plugin_name) -> None:
                item = args[0] if len(args) == 1 else args
                name = name_of(item)
                if name in items:
                    raise PluginError(
                        f"{kind} '{name}' registered twice: by plugin '{owners[name]}' "
                        f"and by plugin '{_plugin}'"
                    )
                items[name] = item
                owners[name] = _plugin

            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as exc:  # one plugin's broken hook must not hide the others
                log.warning("plugin %s: %s failed: %s", plugin_name, hook_name, exc)
                for info in self.infos:
                    if info.name == plugin_name:
                        info.error = f"{hook_name} failed: {type(exc).__name__}: {exc}"
        self._cache[hook_name] = items
        return dict(items)

    def backends(self) -> dict[str, Backend]:
        """Backends by name, in registration order."""
        return self._collect("register_backends", lambda b: b.name, "backend")

    def api_surfaces(self) -> dict[str, ApiSurface]:
        """API surfaces by name."""
        return self._collect("register_api_surfaces", lambda s: s.name, "API surface")

    def stores(self) -> dict[str, StoreFactory]:
        """Store factories by name."""
        pairs = self._collect("register_stores", lambda pair: pair[0], "store")
        return {name: pair[1] for name, pair in pairs.items()}

    def model_sources(self) -> dict[str, ModelSource]:
        """Model sources by name."""
        return self._collect("register_model_sources", lambda s: s.name, "model source")

    def commands(self) -> dict[str, type[Command]]:
        """Plugin-contributed CLI command classes by command name."""
        return self._collect("register_commands", lambda c: c.name, "command")


_registry: PluginRegistry | None = None


def get_registry() -> PluginRegistry:
    """The process-wide registry, discovered on first use."""
    global _registry
    if _registry is None:
        _registry = PluginRegistry.discover()
    return _registry


def reset_registry(registry: PluginRegistry | None = None) -> None:
    """Replace the process-wide registry (tests, embedding)."""
    global _registry
    _registry = registry

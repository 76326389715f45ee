"""Opening the model library on the configured store plugin (cheap: no engine, no Jinja)."""

from __future__ import annotations

from power_core.config import Settings
from power_core.errors import ConfigError
from power_core.library import ModelLibrary
from power_core.plugins import PluginRegistry


def open_library(settings: Settings, registry: PluginRegistry) -> ModelLibrary:
    """The model library on the configured store plugin, with every model source and (for
    a create that quantizes, asked only then) the backends."""
    stores = registry.stores()
    factory = stores.get(settings.store)
    if factory is None:
        known = ", ".join(sorted(stores)) or "none installed"
        raise ConfigError(f"store '{settings.store}' is not available (stores: {known})")
    return ModelLibrary(
        factory(settings.models_path),
        list(registry.model_sources().values()),
        backends=lambda: registry.backends().values(),
    )

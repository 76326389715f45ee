"""A3S Power core: model names, the store, configuration, plugins, engines, server and CLI."""

# the single source of the version (hatch reads it for the distribution's metadata); a
# literal, so that `a3s-power version` need not import importlib.metadata
__version__ = "0.1.0"

__all__ = ["__version__"]

"""A3S Power core: model names, the store, configuration, plugins, engines, server and CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("a3s-power")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = ["__version__"]

"""The built-in ``url`` model source: ``pull https://.../model.gguf``."""

from __future__ import annotations

from collections.abc import Callable

from power_core.hookspecs import hookimpl
from power_core.pull.url import UrlSource
from power_core.sources import ModelSource


@hookimpl
def register_model_sources(register: Callable[[ModelSource], None]) -> None:
    """Register ``url``: downloads of GGUF files over HTTP and HTTPS."""
    register(UrlSource())

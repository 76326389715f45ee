"""The built-in ``registry`` model source: ``pull smollm2:135m`` from an Ollama registry."""

from __future__ import annotations

from collections.abc import Callable

from power_core.hookspecs import hookimpl
from power_core.pull.registry import RegistrySource
from power_core.sources import ModelSource


@hookimpl
def register_model_sources(register: Callable[[ModelSource], None]) -> None:
    """Register ``registry``: models by name from Ollama-compatible registries."""
    register(RegistrySource())

"""Entry point of the ``a3s_power`` plugin group: contributes the llama.cpp backend."""

from __future__ import annotations

from collections.abc import Callable

from power_backend_llamacpp.backend import LlamaCppBackend
from power_core.engine import Backend
from power_core.hookspecs import hookimpl


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    register(LlamaCppBackend())

"""Entry point of the ``a3s_power`` plugin group: contributes the llama.cpp backend and the
``a3s-power llamacpp`` command."""

from __future__ import annotations

from collections.abc import Callable

from cleo.commands.command import Command

from power_backend_llamacpp.backend import LlamaCppBackend
from power_backend_llamacpp.command import LlamaCppCommand
from power_core.engine import Backend
from power_core.hookspecs import hookimpl


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    register(LlamaCppBackend())


@hookimpl
def register_commands(register: Callable[[type[Command]], None]) -> None:
    register(LlamaCppCommand)

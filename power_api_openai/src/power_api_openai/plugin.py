"""Entry point of the ``a3s_power`` plugin group: contributes the ``openai`` API surface."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from power_core.hookspecs import hookimpl
from power_core.server.surface import ApiContext, ApiSurface


def create_blueprint(context: ApiContext) -> Any:
    """The ``/v1`` blueprint; Flask is imported here so the CLI never loads it."""
    from power_api_openai.blueprint import openai_blueprint

    return openai_blueprint(context.services, context.sock)


@hookimpl
def register_api_surfaces(register: Callable[[ApiSurface], None]) -> None:
    register(ApiSurface(name="openai", create_blueprint=create_blueprint))

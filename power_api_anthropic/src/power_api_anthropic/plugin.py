"""Entry point of the ``a3s_power`` plugin group: contributes the ``anthropic`` API surface."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from power_core.hookspecs import hookimpl
from power_core.server.surface import ApiContext, ApiSurface


def create_blueprint(context: ApiContext) -> Any:
    """The ``/v1/messages`` blueprint; Flask is imported here so the CLI never loads it."""
    from power_api_anthropic.blueprint import anthropic_blueprint

    return anthropic_blueprint(context.services)


@hookimpl
def register_api_surfaces(register: Callable[[ApiSurface], None]) -> None:
    register(ApiSurface(name="anthropic", create_blueprint=create_blueprint))

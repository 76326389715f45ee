"""Entry point of the ``a3s_power`` plugin group: contributes the ``ollama`` API surface."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from power_core.hookspecs import hookimpl
from power_core.server.surface import ApiContext, ApiSurface


def create_blueprint(context: ApiContext) -> Any:
    """Build the Flask blueprint; Flask and gevent are imported only when serving."""
    from power_api_ollama.blueprint import build_blueprint

    return build_blueprint(context)


@hookimpl
def register_api_surfaces(register: Callable[[ApiSurface], None]) -> None:
    register(ApiSurface(name="ollama", create_blueprint=create_blueprint))

"""What an API plugin contributes to the server (the ``register_api_surfaces`` hook)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from power_core.services import PowerServices


@dataclass
class ApiContext:
    """Handed to every ``create_blueprint``: the core services and the WebSocket router."""

    services: PowerServices
    #: the server's ``flask_sock.Sock``; use ``context.sock.route(path, bp=blueprint)``
    sock: Any


@dataclass
class ApiSurface:
    """An API flavour: a name and a factory of its Flask blueprint."""

    name: str
    create_blueprint: Callable[[ApiContext], Any]

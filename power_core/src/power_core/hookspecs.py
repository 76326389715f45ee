"""The hooks a plugin can implement.

These docstrings are the reference; ``plugins.md`` is the guide.

Every hook is a *register callback*: the core calls the hook with a ``register`` function and
the plugin calls ``register(...)`` once per thing it contributes. The core owns the
collections, checks names, and rejects duplicates with an error naming both plugins.

A plugin module marks its implementations with :data:`hookimpl`::

    from power_core.hookspecs import hookimpl

    @hookimpl
    def register_backends(register):
        register(MyBackend())
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from cleo.commands.command import Command

    from power_core.engine import Backend
    from power_core.server.surface import ApiSurface
    from power_core.sources import ModelSource
    from power_core.store.base import StoreFactory

PROJECT_NAME = "a3s_power"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: decorate a plugin's hook implementations with this
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_backends(register: Callable[[Backend], None]) -> None:
    """Contribute inference backends.

    :param register: call ``register(backend)`` with an object satisfying
        :class:`power_core.engine.Backend` (``name``, ``supports(format)``, ``load(spec)``).
        The first registered backend whose ``supports()`` accepts a model's format loads it.
        Backend names must be unique.
    """


@hookspec
def register_api_surfaces(register: Callable[[ApiSurface], None]) -> None:
    """Contribute HTTP API surfaces (Flask blueprints, optionally with WebSocket routes).

    :param register: call ``register(ApiSurface(name=..., create_blueprint=...))``.
        ``create_blueprint(context)`` is called once when the server starts, with a
        :class:`power_core.server.surface.ApiContext` holding the core services and the
        ``flask_sock.Sock`` instance; it returns a ``flask.Blueprint``. Surface names must
        be unique. This hook is only called by ``serve``, so importing Flask inside
        ``create_blueprint`` keeps the CLI fast.
    """


@hookspec
def register_stores(register: Callable[[str, StoreFactory], None]) -> None:
    """Contribute model stores (where blobs and manifests live).

    :param register: call ``register(name, factory)``; ``factory(models_dir)`` returns a
        :class:`power_core.store.base.ModelStore`. The ``store`` setting picks one by name;
        the built-in ``local`` store keeps Ollama's on-disk layout.
    """


@hookspec
def register_model_sources(register: Callable[[ModelSource], None]) -> None:
    """Contribute places ``pull`` can download models from.

    :param register: call ``register(source)`` with a
        :class:`power_core.sources.ModelSource`. For each pull, the first source whose
        ``handles(reference)`` is true downloads it. The built-in ``url`` source takes
        ``http://`` and ``https://`` addresses of GGUF files.
    """


@hookspec
def register_commands(register: Callable[[type[Command]], None]) -> None:
    """Contribute CLI commands.

    :param register: call ``register(CommandClass)`` with a ``cleo`` ``Command`` subclass
        (``name``, ``description``, ``arguments``, ``options`` and ``handle() -> int``).
        Command names must be unique across the core and every plugin.
    """

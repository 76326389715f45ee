"""The built-in ``local`` store, registered through the same hook as any plugin's store."""

from __future__ import annotations

from collections.abc import Callable

from power_core.hookspecs import hookimpl
from power_core.store.base import StoreFactory
from power_core.store.local import LocalStore


@hookimpl
def register_stores(register: Callable[[str, StoreFactory], None]) -> None:
    """Register ``local``: Ollama's layout (``blobs/``, ``manifests/``) in the models folder."""
    register("local", LocalStore)

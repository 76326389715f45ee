"""The llama.cpp backend of A3S Power: GGUF models on one continuously batching engine thread.

Importing this package (which the plugin loader does at every CLI start) must not import
``llama_cpp`` or ``numpy``: :class:`LlamaCppBackend` imports them when it first loads a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from power_backend_llamacpp.backend import LlamaCppBackend

if TYPE_CHECKING:
    from power_backend_llamacpp.engine import LlamaCppEngine

__all__ = ["LlamaCppBackend", "LlamaCppEngine"]


def __getattr__(name: str) -> Any:
    if name == "LlamaCppEngine":
        from power_backend_llamacpp.engine import LlamaCppEngine

        return LlamaCppEngine
    raise AttributeError(name)

"""LoRA adapters (:attr:`power_core.engine.LoadSpec.adapters`): loaded once on a model, and
set on each of its contexts, the generating one and the embedding one alike, each at scale
1 as in Ollama. llama.cpp frees them with the model."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import llama_cpp as lc

from power_core.errors import ModelLoadFailed


class LoraAdapters:
    """The adapters of one loaded model."""

    def __init__(self, model: Any, paths: tuple[Path, ...], model_name: str) -> None:
        handles = []
        for path in paths:
            handle = lc.llama_adapter_lora_init(model, str(path).encode())
            if not handle:
                raise ModelLoadFailed(
                    f"llama.cpp could not load the LoRA adapter {path} of '{model_name}'"
                )
            handles.append(handle)
        self._count = len(handles)
        self._handles = (lc.llama_adapter_lora_p_ctypes * self._count)(*handles)
        self._scales = (ctypes.c_float * self._count)(*([1.0] * self._count))
        self._model_name = model_name

    def apply(self, ctx: Any) -> None:
        """Set the adapters on ``ctx`` (nothing to do without any)."""
        if not self._count:
            return
        if lc.llama_set_adapters_lora(ctx, self._handles, self._count, self._scales):
            raise ModelLoadFailed(
                f"llama.cpp could not set the LoRA adapters of '{self._model_name}'"
            )

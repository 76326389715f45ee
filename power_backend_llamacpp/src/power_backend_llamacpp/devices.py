"""The devices llama.cpp computes on here, and their free memory, from ggml's backend
registry (``ggml_backend_dev_*``, which llama-cpp-python does not bind).

A llama-cpp-python built for CPUs only has one device, the CPU; one built with CUDA,
Vulkan, Metal or ROCm lists its GPUs beside it, each with the memory its driver says is
free. The backend offloads layers only to the GPUs listed here
(:mod:`power_backend_llamacpp.gpu_layers`).
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

#: ``enum ggml_backend_dev_type`` (ggml-backend.h)
_KINDS = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel", 4: "meta"}
#: the kinds whose memory holds offloaded layers: a discrete GPU's own, or an integrated
#: GPU's share of the host's (Apple's Metal, ...)
GPU_KINDS = frozenset({"gpu", "igpu"})


@dataclass(frozen=True)
class Device:
    """One of llama.cpp's devices, as its backend describes it."""

    #: ggml's name: ``CPU``, ``CUDA0``, ``Vulkan1``, ``MTL0``
    name: str
    description: str
    #: ``cpu``, ``gpu``, ``igpu`` (a GPU sharing host memory), ``accel`` or ``meta``
    kind: str
    free_bytes: int
    total_bytes: int

    @property
    def is_gpu(self) -> bool:
        return self.kind in GPU_KINDS


def list_devices() -> list[Device]:
    """Every device llama.cpp's build registered, with the memory free on it now."""
    registry, base = _ggml()
    devices = []
    for index in range(registry.ggml_backend_dev_count()):
        device = registry.ggml_backend_dev_get(index)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        base.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
        devices.append(
            Device(
                name=_text(base.ggml_backend_dev_name(device)),
                description=_text(base.ggml_backend_dev_description(device)),
                kind=_KINDS.get(base.ggml_backend_dev_type(device), "unknown"),
                free_bytes=free.value,
                total_bytes=total.value,
            )
        )
    return devices


def list_gpus() -> list[Device]:
    """The devices layers can be offloaded to, in llama.cpp's order (``main_gpu`` counts
    them from 0)."""
    import llama_cpp as lc

    if not lc.llama_supports_gpu_offload():
        return []
    return [device for device in list_devices() if device.is_gpu]


def describe(device: Device) -> str:
    """``CUDA0 (NVIDIA H200, gpu, 139.1 of 140.4 GiB free)``."""
    memory = ""
    if device.total_bytes:
        memory = f", {device.free_bytes / 2**30:.1f} of {device.total_bytes / 2**30:.1f} GiB free"
    return f"{device.name} ({device.description}, {device.kind}{memory})"


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", errors="replace") if value else "?"


#: the libraries' file names (llama-cpp-python ships them in its package's ``lib``)
_LIBRARIES = {
    "win32": ("ggml.dll", "ggml-base.dll"),
    "darwin": ("libggml.dylib", "libggml-base.dylib"),
}


@cache
def _ggml() -> tuple[Any, Any]:
    """ggml's registry library (``ggml_backend_dev_count``, ``_get``) and its base library
    (the calls on a device), as llama-cpp-python ships them, with their functions typed."""
    import llama_cpp

    folder = Path(llama_cpp.__file__).parent / "lib"
    names = _LIBRARIES.get(sys.platform, ("libggml.so", "libggml-base.so"))
    registry, base = (ctypes.CDLL(str(folder / name)) for name in names)
    device = ctypes.c_void_p
    registry.ggml_backend_dev_count.restype = ctypes.c_size_t
    registry.ggml_backend_dev_count.argtypes = []
    registry.ggml_backend_dev_get.restype = device
    registry.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    for name in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
        getattr(base, name).restype = ctypes.c_char_p
        getattr(base, name).argtypes = [device]
    base.ggml_backend_dev_type.restype = ctypes.c_int
    base.ggml_backend_dev_type.argtypes = [device]
    base.ggml_backend_dev_memory.restype = None
    base.ggml_backend_dev_memory.argtypes = [
        device,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    return registry, base

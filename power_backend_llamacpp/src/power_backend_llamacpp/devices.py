"""The devices llama.cpp computes on here, and their free memory, from ggml's backend
registry (``ggml_backend_dev_*``, which llama-cpp-python does not bind).

A llama-cpp-python built for CPUs only has one device, the CPU; one built with CUDA,
Vulkan, Metal or ROCm lists its GPUs beside it, each with the memory its driver says is
free. The functions are looked up through llama-cpp-python's own handle on ``libllama``
(whose dependencies hold them), so that the registry read is the one llama.cpp loads
models with, never a second copy of ggml.
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

log = logging.getLogger(__name__)

#: ``enum ggml_backend_dev_type`` (ggml-backend.h)
_KINDS = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel", 4: "meta"}


class DevicesUnknown(Exception):
    """llama.cpp's build does not let its devices be listed (a static or unusual build)."""


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
    #: the name of the backend that registered it (``CUDA``, ``Vulkan``, ``MTL``, ``RPC``)
    backend: str = ""
    #: the device's id (a PCI bus id), by which llama.cpp knows one GPU two backends see
    device_id: str = ""

    @property
    def uses_host_memory(self) -> bool:
        """Whether its memory is the host's RAM: an integrated GPU, or Apple's GPUs, which
        Metal reports as discrete but which share the machine's memory."""
        return self.kind == "igpu" or self.name.startswith("MTL")


def list_devices() -> list[Device]:
    """Every device llama.cpp's build registered, with the memory free on it now.
    :class:`DevicesUnknown` where the build does not say."""
    ggml = _ggml()
    devices = []
    for index in range(ggml.ggml_backend_dev_count()):
        device = ggml.ggml_backend_dev_get(index)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        ggml.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
        registry = ggml.ggml_backend_dev_backend_reg(device)
        # the whole struct is written: a buffer larger than it, read through its head
        props = (ctypes.c_byte * 1024)()
        ggml.ggml_backend_dev_get_props(device, props)
        device_id = _PropsHead.from_buffer(props).device_id
        devices.append(
            Device(
                name=_text(ggml.ggml_backend_dev_name(device)),
                description=_text(ggml.ggml_backend_dev_description(device)),
                kind=_KINDS.get(ggml.ggml_backend_dev_type(device), "unknown"),
                free_bytes=free.value,
                total_bytes=total.value,
                backend=_text(ggml.ggml_backend_reg_name(registry)) if registry else "",
                device_id=device_id.decode("utf-8", errors="replace") if device_id else "",
            )
        )
    return devices


def list_gpus() -> list[Device]:
    """The devices a model's layers go to, chosen and ordered as llama.cpp chooses them by
    default (``main_gpu`` counts them from 0): RPC servers first, then the discrete GPUs,
    or, where there are none, the integrated GPUs of one backend. Accelerators (BLAS,
    AMX) compute beside the CPU and hold no layers. :class:`DevicesUnknown` where the
    build supports offloading but does not list its devices."""
    import llama_cpp as lc

    if not lc.llama_supports_gpu_offload():
        return []
    devices = list_devices()
    remote = [d for d in devices if d.kind == "gpu" and d.backend == "RPC"]
    discrete: list[Device] = []
    for device in devices:
        if device.kind == "gpu" and device.backend != "RPC" and not _seen(device, discrete):
            discrete.append(device)
    integrated = [d for d in devices if d.kind == "igpu"]
    if discrete or not integrated:
        return remote + discrete
    return remote + [d for d in integrated if d.backend == integrated[0].backend]


def _seen(device: Device, listed: list[Device]) -> bool:
    """Whether ``device`` is one of ``listed`` seen through another backend (CUDA and
    Vulkan both list a card): the same device id."""
    return bool(device.device_id) and any(d.device_id == device.device_id for d in listed)


def describe(device: Device) -> str:
    """``CUDA0 (NVIDIA H200, gpu, 139.1 of 140.4 GiB free)``."""
    memory = ""
    if device.total_bytes:
        memory = f", {device.free_bytes / 2**30:.1f} of {device.total_bytes / 2**30:.1f} GiB free"
    return f"{device.name} ({device.description}, {device.kind}{memory})"


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", errors="replace") if value else "?"


#: (function, result type, argument types); a device and a registry are pointers
_FUNCTIONS: tuple[tuple[str, Any, list[Any]], ...] = (
    ("ggml_backend_dev_count", ctypes.c_size_t, []),
    ("ggml_backend_dev_get", ctypes.c_void_p, [ctypes.c_size_t]),
    ("ggml_backend_dev_name", ctypes.c_char_p, [ctypes.c_void_p]),
    ("ggml_backend_dev_description", ctypes.c_char_p, [ctypes.c_void_p]),
    ("ggml_backend_dev_type", ctypes.c_int, [ctypes.c_void_p]),
    ("ggml_backend_dev_get_props", None, [ctypes.c_void_p, ctypes.c_void_p]),
    (
        "ggml_backend_dev_memory",
        None,
        [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)],
    ),
    ("ggml_backend_dev_backend_reg", ctypes.c_void_p, [ctypes.c_void_p]),
    ("ggml_backend_reg_name", ctypes.c_char_p, [ctypes.c_void_p]),
)


class _PropsHead(ctypes.Structure):
    """The fields of ``struct ggml_backend_dev_props`` up to its device id (those after,
    its capabilities, have changed between versions)."""

    _fields_ = (
        ("name", ctypes.c_char_p),
        ("description", ctypes.c_char_p),
        ("memory_free", ctypes.c_size_t),
        ("memory_total", ctypes.c_size_t),
        ("type", ctypes.c_int),
        ("device_id", ctypes.c_char_p),
    )


@dataclass(frozen=True)
class _Ggml:
    ggml_backend_dev_count: Any
    ggml_backend_dev_get: Any
    ggml_backend_dev_name: Any
    ggml_backend_dev_description: Any
    ggml_backend_dev_type: Any
    ggml_backend_dev_get_props: Any
    ggml_backend_dev_memory: Any
    ggml_backend_dev_backend_reg: Any
    ggml_backend_reg_name: Any


@cache
def _ggml() -> _Ggml:
    """ggml's registry functions, typed, found through ``libllama``'s handle (a lookup
    through a library's handle searches the libraries it depends on, ggml's among them)."""
    try:
        from llama_cpp import llama_cpp as bindings

        # the handle llama.cpp itself was loaded by
        library = bindings._lib
        functions = {}
        for name, result, arguments in _FUNCTIONS:
            function = getattr(library, name)
            function.restype, function.argtypes = result, arguments
            functions[name] = function
    except (AttributeError, OSError, ImportError) as exc:
        raise DevicesUnknown(f"llama.cpp's devices cannot be listed: {exc}") from exc
    return _Ggml(**functions)

"""Which layers of a model a load puts on the GPUs (``num_gpu``, ``main_gpu``).

On a llama.cpp built without GPU support nothing is offloaded and both options are
ignored, as Ollama ignores them on a machine without GPUs: a Modelfile written for a GPU
machine still loads on a laptop. Where llama.cpp has GPUs, ``num_gpu`` layers go to them
(:mod:`power_backend_llamacpp.gpu_layers` says how many fit when it is negative), and a
``main_gpu`` beyond the last GPU is the client's mistake, refused before llama.cpp reads
the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from power_backend_llamacpp.devices import Device, describe, list_gpus
from power_backend_llamacpp.gpu_layers import RESERVE_PER_GPU, ModelLayers, model_layers
from power_core.errors import InvalidRequest
from power_core.gguf import read_gguf_info
from power_core.types import LoadOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Offload:
    """What a load offloads: ``layers`` is llama.cpp's ``n_gpu_layers``."""

    layers: int
    #: the layers' weights and KV cache in GPU memory (compute buffers aside)
    gpu_bytes: int = 0
    #: the KV cache's part of ``gpu_bytes``
    gpu_kv_bytes: int = 0


ON_THE_CPU = Offload(layers=0)


def plan_offload(
    path: Path, name: str, options: LoadOptions, *, n_ubatch: int, kv_bytes_per_element: float
) -> Offload:
    """How many layers of the model at ``path`` go to the GPUs (none without GPUs)."""
    gpus = list_gpus()
    if not gpus:
        return ON_THE_CPU
    if options.main_gpu >= len(gpus):
        raise InvalidRequest(
            f"main_gpu must be below {len(gpus)}: llama.cpp sees "
            + ", ".join(f"{index}: {describe(gpu)}" for index, gpu in enumerate(gpus)),
            param="main_gpu",
        )
    if options.num_gpu == 0:
        return ON_THE_CPU
    layers = model_layers(
        read_gguf_info(path),
        num_ctx=options.num_ctx,
        num_parallel=options.num_parallel,
        n_ubatch=n_ubatch,
        kv_bytes_per_element=kv_bytes_per_element,
        flash_attention=options.flash_attention,
    )
    if options.num_gpu < 0:
        chosen = layers.layers_that_fit(usable_gpu_memory(gpus))
    else:
        chosen = min(options.num_gpu, layers.count + 1)
    plan = _offload(layers, chosen)
    log.info(
        "%s: %d of %d layers on %s (%.0f MiB)%s",
        name,
        min(chosen, layers.count),
        layers.count,
        ", ".join(gpu.name for gpu in gpus),
        plan.gpu_bytes / 2**20,
        "" if chosen > layers.count else ", the output layer on the CPU",
    )
    return plan


def usable_gpu_memory(gpus: list[Device]) -> int:
    """The memory free on ``gpus`` for weights, caches and compute buffers: llama.cpp
    spreads layers over them in proportion to their free memory."""
    return sum(max(0, gpu.free_bytes - RESERVE_PER_GPU) for gpu in gpus)


def _offload(layers: ModelLayers, chosen: int) -> Offload:
    offloaded = min(chosen, layers.count)
    kv = sum(layers.kv_cache[layers.count - offloaded :])
    return Offload(layers=chosen, gpu_bytes=layers.bytes_on_gpu(chosen), gpu_kv_bytes=kv)

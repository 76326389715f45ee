"""Which layers of a model a load puts on the GPUs (``num_gpu``, ``main_gpu``).

On a llama.cpp built without GPU support nothing is offloaded and both options are
ignored, as Ollama ignores them on a machine without GPUs: a Modelfile written for a GPU
machine still loads on a laptop. Where llama.cpp has GPUs, ``num_gpu`` of the model's
layers go to them (:mod:`power_backend_llamacpp.gpu_layers` says how many fit when it is
negative), spread over every GPU in proportion to its free memory, as llama.cpp spreads
them; a ``main_gpu`` puts them all on that one GPU instead (llama.cpp reads ``main_gpu``
only then), and one beyond the last GPU is the client's mistake, refused before the model
in memory is unloaded for it.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from dataclasses import dataclass
from functools import cache
from itertools import accumulate
from pathlib import Path

from power_backend_llamacpp.devices import Device, DevicesUnknown, describe, list_gpus
from power_backend_llamacpp.gpu_layers import (
    RESERVE_PER_GPU,
    ModelLayers,
    head_sizes,
    model_layers,
    usable_cache_type,
)
from power_backend_llamacpp.limits import available_memory
from power_core.errors import InvalidRequest
from power_core.gguf import read_gguf_info
from power_core.types import LoadOptions

log = logging.getLogger(__name__)

#: bytes per element of each KV cache type (f16: 2; q8_0: 34 bytes a block of 32; q4_0: 18)
KV_BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}


@dataclass(frozen=True)
class Offload:
    """What a load offloads: ``layers`` is llama.cpp's ``n_gpu_layers``."""

    layers: int
    #: the layers' weights and KV cache in GPU memory (compute buffers aside)
    gpu_bytes: int = 0
    #: the KV cache's part of ``gpu_bytes`` that is not in the host's RAM (a discrete
    #: GPU's own memory; an integrated or Apple GPU's memory is the host's)
    kv_off_host: int = 0
    #: the one GPU that holds them all (llama.cpp's split mode "none"), else ``None``
    #: (spread over every GPU)
    only_gpu: int | None = None


ON_THE_CPU = Offload(layers=0)


#: whether llama.cpp was found to offload to no GPU at all (its build or the machine has
#: none, which a running process does not gain); ``None`` until a load has asked
_no_gpus: bool | None = None


def usable_gpus() -> list[Device] | None:
    """The GPUs llama.cpp offloads to (empty: none), with their free memory now, or
    ``None`` where its build can offload but does not say to what (then llama.cpp's own
    defaults apply)."""
    global _no_gpus
    try:
        gpus = list_gpus()
    except DevicesUnknown as exc:
        _warn_once(f"{exc}; GPU layers follow num_gpu alone")
        return None
    _no_gpus = not gpus
    return gpus


@cache
def _gpus_at_start() -> tuple[str, ...] | None:
    """The GPUs as first listed (their descriptions): how many there are does not change
    while the process runs, so checking a ``main_gpu`` asks llama.cpp once."""
    gpus = usable_gpus()
    return None if gpus is None else tuple(describe(gpu) for gpu in gpus)


@cache
def _warn_once(message: str) -> None:
    log.warning("%s", message)


def without_gpus_seen() -> bool:
    """Whether a load has found llama.cpp offloading to no GPU (then ``num_gpu`` and
    ``main_gpu`` change nothing). Asks nothing of llama.cpp itself: the scheduler asks on
    its event loop, before anything may have imported llama.cpp."""
    return _no_gpus is True


def check_main_gpu(options: LoadOptions) -> None:
    """Refuse a ``main_gpu`` beyond the GPUs llama.cpp sees (ignored where it sees none)."""
    if options.main_gpu is None or options.num_gpu == 0:
        return
    gpus = _gpus_at_start()
    if gpus and options.main_gpu >= len(gpus):
        raise InvalidRequest(
            f"main_gpu must be below {len(gpus)}: llama.cpp sees "
            + ", ".join(f"{index}: {gpu}" for index, gpu in enumerate(gpus)),
            param="main_gpu",
        )


def plan_offload(
    path: Path, name: str, options: LoadOptions, *, n_ubatch: int, cache_type: str
) -> Offload:
    """How many layers of the model at ``path`` go to the GPUs (none without GPUs)."""
    gpus = usable_gpus()
    if options.num_gpu == 0 or gpus == []:
        return ON_THE_CPU
    check_main_gpu(options)
    info = read_gguf_info(path)
    layers = model_layers(
        info,
        num_ctx=options.num_ctx,
        num_parallel=options.num_parallel,
        n_ubatch=n_ubatch,
        kv_bytes_per_element=KV_BYTES_PER_ELEMENT[usable_cache_type(cache_type, head_sizes(info))],
        flash_attention=options.flash_attention,
    )
    holding = gpus if gpus is None or options.main_gpu is None else [gpus[options.main_gpu]]
    if options.num_gpu > 0:
        chosen = min(options.num_gpu, layers.count + 1)
    elif holding is None:
        chosen = layers.count + 1  # llama.cpp's own default: everything
    else:
        chosen = layers_that_fit(layers, holding)
    plan = Offload(
        layers=chosen,
        gpu_bytes=layers.bytes_on_gpu(chosen),
        kv_off_host=0
        if holding is None or any(gpu.uses_host_memory for gpu in holding)
        else layers.kv_on_gpu(chosen),
        only_gpu=options.main_gpu,
    )
    _log_plan(name, layers, plan, holding)
    return plan


def layers_that_fit(layers: ModelLayers, gpus: list[Device]) -> int:
    """The most of the model's row (:mod:`~power_backend_llamacpp.gpu_layers`) whose
    share on each GPU fits there beside its compute buffers and :data:`RESERVE_PER_GPU`."""
    free = _free_memory(gpus)
    for chosen in range(layers.count + 1, 0, -1):
        shares = bytes_per_gpu(layers, chosen, free)
        if all(
            not share or share + layers.graph + RESERVE_PER_GPU <= room
            for share, room in zip(shares, free, strict=True)
        ):
            return chosen
    return 0


def bytes_per_gpu(layers: ModelLayers, n_gpu_layers: int, free: list[int]) -> list[int]:
    """What each GPU holds when ``n_gpu_layers`` of the row are offloaded: llama.cpp
    (``llama-model.cpp``) gives the k-th of the offloaded layers to the first GPU whose
    running share of the free memory is above k / n_gpu_layers."""
    total = sum(free)
    shares = [0] * len(free)
    if total <= 0 or n_gpu_layers <= 0:
        return shares
    bounds = list(accumulate(room / total for room in free))
    offloaded = min(n_gpu_layers, layers.count + 1)
    first = layers.count + 1 - offloaded
    for layer in range(first, layers.count + 1):
        where = min(bisect_right(bounds, (layer - first) / offloaded), len(free) - 1)
        if layer == layers.count:
            shares[where] += layers.output
        else:
            shares[where] += layers.weights[layer] + layers.kv_cache[layer]
    return shares


def _free_memory(gpus: list[Device]) -> list[int]:
    """Each GPU's free memory; one that reports none at all (no memory of its own to tell
    of) gets the host's, as llama.cpp splits by."""
    host = available_memory() or 0
    return [gpu.free_bytes if gpu.free_bytes or gpu.total_bytes else host for gpu in gpus]


def _log_plan(name: str, layers: ModelLayers, plan: Offload, gpus: list[Device] | None) -> None:
    offloaded = len(layers.offloaded(plan.layers))
    log.info(
        "%s: %d of %d layers%s on %s (%.0f MiB)",
        name,
        offloaded,
        layers.count,
        " and the output layer" if plan.layers else "",
        ", ".join(gpu.name for gpu in gpus) if gpus else "the GPUs",
        plan.gpu_bytes / 2**20,
    )

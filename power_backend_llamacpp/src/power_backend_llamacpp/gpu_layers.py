"""How many of a model's layers go to the GPUs, and how many bytes they take there.

llama.cpp offloads ``n_gpu_layers`` of a model's repeating layers, counted from the last
one back, with their share of the KV cache; past the last of them (``n_gpu_layers`` above
the layer count) the output layer goes too. The token embeddings stay in host memory
(a table looked up a row at a time), so "everything" is the layer count plus one.

Ollama's ``num_gpu`` option is that number. Left unset (or negative), as many layers are
offloaded as fit in the memory the GPUs have free, less :data:`RESERVE_PER_GPU` each (the
driver's and the math libraries' own buffers) and less an estimate of llama.cpp's compute
buffers (:func:`graph_bytes`); 0 keeps the model on the CPU. These sizes are estimates
from the file's tensors, the same ones ``/api/ps`` reports as ``size_vram``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from power_core.gguf import GGUFInfo

#: memory left free on each GPU besides the model: the CUDA/ROCm/Vulkan driver's and
#: the math libraries' workspaces (cuBLAS, ...), which llama.cpp does not count
RESERVE_PER_GPU = 512 * 2**20
_LAYER_TENSOR = re.compile(r"blk\.(\d+)\.")
#: the output layer's tensors (its weight may be missing: then it shares the embeddings')
_OUTPUT_TENSORS = ("output.weight", "output.bias", "output_norm.weight", "output_norm.bias")


@dataclass(frozen=True)
class ModelLayers:
    """The bytes each part of a model takes where it is placed."""

    #: the weights of each repeating layer (``blk.N.*``), from the first
    weights: tuple[int, ...]
    #: the KV cache of each repeating layer (every sequence's cells)
    kv_cache: tuple[int, ...]
    #: the output layer's weights (its own, or a copy of the token embeddings it shares)
    output: int
    #: llama.cpp's compute buffers on a device holding layers (an estimate)
    graph: int

    @property
    def count(self) -> int:
        return len(self.weights)

    def bytes_on_gpu(self, n_gpu_layers: int) -> int:
        """What offloading ``n_gpu_layers`` puts in GPU memory (compute buffers aside)."""
        offloaded = max(0, min(n_gpu_layers, self.count))
        first = self.count - offloaded
        total = sum(self.weights[first:]) + sum(self.kv_cache[first:])
        if n_gpu_layers > self.count:
            total += self.output
        return total

    def layers_that_fit(self, free_bytes: int) -> int:
        """The most layers whose weights and KV cache fit in ``free_bytes`` beside the
        compute buffers, up to all of them and the output layer (``count + 1``)."""
        budget = free_bytes - self.graph
        fitted = 0
        while fitted <= self.count and self.bytes_on_gpu(fitted + 1) <= budget:
            fitted += 1
        return fitted


def model_layers(
    info: GGUFInfo,
    *,
    num_ctx: int,
    num_parallel: int,
    n_ubatch: int,
    kv_bytes_per_element: float,
    flash_attention: bool,
) -> ModelLayers:
    """The sizes of ``info``'s layers, for a context of ``num_ctx`` cells per sequence."""
    count = _int(info.arch_value("block_count"))
    weights = [0] * count
    output = 0
    embeddings = 0
    tied = not any(tensor.name == "output.weight" for tensor in info.tensors)
    for tensor in info.tensors:
        match = _LAYER_TENSOR.match(tensor.name)
        if match is not None and int(match.group(1)) < count:
            weights[int(match.group(1))] += tensor.n_bytes
        elif tensor.name in _OUTPUT_TENSORS:
            output += tensor.n_bytes
        elif tensor.name == "token_embd.weight":
            embeddings = tensor.n_bytes
    if tied:
        output += embeddings
    cells = num_ctx * num_parallel
    kv_cache = tuple(
        int(heads * width * cells * kv_bytes_per_element)
        for heads, width in _kv_shapes(info, count)
    )
    return ModelLayers(
        weights=tuple(weights),
        kv_cache=kv_cache,
        output=output,
        graph=graph_bytes(info, num_ctx=num_ctx, n_ubatch=n_ubatch, flash=flash_attention),
    )


def graph_bytes(info: GGUFInfo, *, num_ctx: int, n_ubatch: int, flash: bool) -> int:
    """An estimate of llama.cpp's compute buffers for one batch of ``n_ubatch`` tokens:
    the larger of the logits (``n_ubatch`` x the vocabulary, in f32) and the attention's
    intermediates (without flash attention, each head's scores over ``num_ctx`` cells)."""
    embedding = _int(info.arch_value("embedding_length"))
    heads = _layer_values(info.arch_value("attention.head_count"), 1)
    vocab = next(
        (
            tensor.shape[1]
            for tensor in info.tensors
            if tensor.name == "token_embd.weight" and len(tensor.shape) > 1
        ),
        0,
    )
    logits = 4 * n_ubatch * (embedding + vocab)
    scores = 0 if flash else num_ctx * (1 + max(heads, default=1))
    attention = 4 * n_ubatch * (1 + 4 * embedding + scores)
    return max(logits, attention)


def _kv_shapes(info: GGUFInfo, count: int) -> list[tuple[int, int]]:
    """Each layer's KV heads and the values of a key plus a value per head."""
    heads = _layer_values(info.arch_value("attention.head_count"), count)
    kv_heads = _layer_values(info.arch_value("attention.head_count_kv"), count) or heads
    embedding = _int(info.arch_value("embedding_length"))
    shapes = []
    for layer in range(count):
        query_heads = heads[layer] if layer < len(heads) else 1
        default = embedding // query_heads if query_heads else 0
        key = _int(info.arch_value("attention.key_length")) or default
        value = _int(info.arch_value("attention.value_length")) or default
        layer_kv = kv_heads[layer] if layer < len(kv_heads) else query_heads
        shapes.append((layer_kv, key + value))
    return shapes


def _layer_values(value: object, count: int) -> list[int]:
    """A per-layer hyperparameter: one number for every layer, or a list of them."""
    if isinstance(value, list):
        return [_int(item) for item in value]
    number = _int(value)
    return [number] * count if number else []


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

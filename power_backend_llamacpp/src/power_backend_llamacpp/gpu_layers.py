"""How many of a model's layers go to the GPUs, and how many bytes they take there.

llama.cpp numbers a model's repeating layers from 0 and its output layer after them, and
``n_gpu_layers = k`` offloads the last ``k`` of that row (``llama-model.cpp``:
``i_gpu_start = n_layer + 1 - n_gpu_layers``): the output layer first, then the repeating
layers from the last one back, each with its share of the KV cache. The token embeddings
stay in host memory (a table looked up a row at a time); the output layer of a model that
ties it to them gets a copy of the table. "Everything" is the layer count plus one.

Ollama's ``num_gpu`` option is that number. Left unset (or negative), as many layers are
offloaded as fit in the memory the GPUs have free, less :data:`RESERVE_PER_GPU` each (the
driver's and the math libraries' own buffers) and less an estimate of llama.cpp's compute
buffers on each (:func:`graph_bytes`); 0 keeps the model on the CPU. These sizes are
estimates from the file's tensors, the same ones ``/api/ps`` reports as ``size_vram``. They
count every layer's KV cache at the full context, so they are high for models whose
sliding-window layers keep fewer cells (Gemma 2 and 3) or whose layers share a cache: such
a model gets fewer layers offloaded than would fit, never more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from power_core.gguf import GGUFInfo

#: memory left free on each GPU besides the model: the CUDA/ROCm/Vulkan driver's and
#: the math libraries' workspaces (cuBLAS, ...), which llama.cpp does not count
RESERVE_PER_GPU = 512 * 2**20
#: llama.cpp rounds a context's cells, and each sequence's, up to a multiple of this
CELL_PADDING = 256
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

    def offloaded(self, n_gpu_layers: int) -> range:
        """The repeating layers ``n_gpu_layers`` puts on the GPUs (the output layer goes
        first, so one fewer than asked, up to all of them)."""
        repeating = max(0, min(n_gpu_layers - 1, self.count))
        return range(self.count - repeating, self.count)

    def bytes_on_gpu(self, n_gpu_layers: int) -> int:
        """What offloading ``n_gpu_layers`` puts in GPU memory (compute buffers aside)."""
        if n_gpu_layers <= 0:
            return 0
        layers = self.offloaded(n_gpu_layers)
        return (
            self.output
            + sum(self.weights[layers.start : layers.stop])
            + sum(self.kv_cache[layers.start : layers.stop])
        )

    def kv_on_gpu(self, n_gpu_layers: int) -> int:
        """The part of :meth:`bytes_on_gpu` that is KV cache."""
        layers = self.offloaded(n_gpu_layers)
        return sum(self.kv_cache[layers.start : layers.stop])

    def layers_that_fit(self, budget: int) -> int:
        """The most of the row whose weights and KV cache fit in ``budget`` bytes (the
        compute buffers already taken out), up to all of it (``count + 1``)."""
        fitted = 0
        while fitted <= self.count and self.bytes_on_gpu(fitted + 1) <= budget:
            fitted += 1
        return fitted


def context_cells(num_ctx: int, num_parallel: int) -> int:
    """The KV cells llama.cpp allocates for ``num_parallel`` sequences of ``num_ctx``
    cells each, each its own stream (``llama-context.cpp`` pads both counts)."""
    total = pad_cells(num_ctx * num_parallel)
    return pad_cells(total // num_parallel) * num_parallel


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
    cells = context_cells(num_ctx, num_parallel)
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
    scores = 0 if flash else pad_cells(num_ctx) * (1 + max(heads, default=1))
    attention = 4 * n_ubatch * (1 + 4 * embedding + scores)
    return max(logits, attention)


def head_sizes(info: GGUFInfo) -> tuple[int, int]:
    """:func:`head_sizes_from` the file's header."""
    return head_sizes_from(
        _int(info.arch_value("embedding_length")),
        max(_layer_values(info.arch_value("attention.head_count"), 1), default=0),
        _int(info.arch_value("attention.key_length")),
        _int(info.arch_value("attention.value_length")),
    )


def head_sizes_from(embedding: int, heads: int, key: int, value: int) -> tuple[int, int]:
    """The values of one key head and of one value head: ``key_length`` and
    ``value_length`` (0: not given), else the embedding over the query heads."""
    default = embedding // heads if heads > 0 else 0
    return key or default, value or default


def usable_cache_type(cache_type: str, sizes: tuple[int, int]) -> str:
    """``cache_type``, or f16 where a head's size is not a whole number of the quantized
    type's 32-value blocks (llama.cpp then refuses the context, e.g. Phi-2's heads of 80)."""
    if cache_type != "f16" and any(size % 32 for size in sizes):
        return "f16"
    return cache_type


def _kv_shapes(info: GGUFInfo, count: int) -> list[tuple[int, int]]:
    """Each layer's KV heads and the values of a key plus a value per head. A layer with
    no attention heads (a recurrent one: Mamba's, RWKV's) keeps a small fixed state, not a
    cache that grows with the context: it counts as none."""
    heads = _layer_values(info.arch_value("attention.head_count"), count)
    kv_heads = _layer_values(info.arch_value("attention.head_count_kv"), count) or heads
    key, value = head_sizes(info)
    shapes = []
    for layer in range(count):
        query_heads = heads[layer] if layer < len(heads) else 0
        layer_kv = kv_heads[layer] if layer < len(kv_heads) else query_heads
        shapes.append((layer_kv if query_heads else 0, key + value))
    return shapes


def _layer_values(value: object, count: int) -> list[int]:
    """A per-layer hyperparameter: one number for every layer, or a list of them."""
    if isinstance(value, list):
        return [_int(item) for item in value]
    number = _int(value)
    return [number] * count if number else []


def pad_cells(cells: int) -> int:
    """``cells`` rounded up to a multiple of :data:`CELL_PADDING`, as llama.cpp rounds them."""
    return -(-cells // CELL_PADDING) * CELL_PADDING


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

"""GGUF LoRA adapters written in the tests with the ``gguf`` package, shaped for a given
model file: what llama.cpp's ``convert_lora_to_gguf.py`` writes (``general.type``
``adapter``, ``adapter.type`` ``lora``, ``adapter.lora.alpha``, and for each weight ``W`` of
``n_in x n_out`` a pair ``W.lora_a`` of ``n_in x rank`` and ``W.lora_b`` of
``rank x n_out``; the token embeddings, looked up rather than multiplied, the other way
round)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np


def model_shapes(model: Path) -> tuple[str, dict[str, tuple[int, ...]]]:
    """A GGUF model's architecture and its tensors' shapes (llama.cpp's order: ``n_in``
    first)."""
    reader = gguf.GGUFReader(str(model))
    arch = str(reader.fields["general.architecture"].contents())
    return arch, {tensor.name: tuple(int(n) for n in tensor.shape) for tensor in reader.tensors}


def write_lora(
    path: Path,
    model: Path,
    *,
    targets: tuple[str, ...] = ("attn_q.weight", "attn_v.weight"),
    scale: float = 0.1,
    rank: int = 4,
    seed: int = 0,
    arch: str | None = None,
    metadata: dict[str, str] | None = None,
    shapes: dict[str, tuple[int, ...]] | None = None,
    halves: tuple[str, ...] = ("lora_a", "lora_b"),
) -> Path:
    """An adapter for ``model`` changing every tensor whose name ends with one of
    ``targets``, with random values of about ``scale`` (0 gives an adapter that changes
    nothing). ``arch``, ``metadata`` (``general.type``, ``adapter.type``), ``shapes`` (the
    target shapes to write for) and ``halves`` make broken ones."""
    model_arch, model_tensors = model_shapes(model)
    writer = gguf.GGUFWriter(str(path), arch or model_arch)
    fields = {"general.type": "adapter", "adapter.type": "lora", **(metadata or {})}
    for key, value in fields.items():
        writer.add_string(key, value)
    writer.add_float32("adapter.lora.alpha", float(rank))
    rng = np.random.default_rng(seed)
    for name, shape in (shapes or model_tensors).items():
        if not name.endswith(targets):
            continue
        n_in, n_out = shape[0], shape[1]
        # numpy shapes are the reverse of llama.cpp's
        if name == "token_embd.weight":
            a_shape, b_shape = (n_out, rank), (n_in, rank)
        else:
            a_shape, b_shape = (rank, n_in), (n_out, rank)
        pair = {
            "lora_a": rng.standard_normal(a_shape) * scale,
            "lora_b": rng.standard_normal(b_shape) * scale,
        }
        for half in halves:
            writer.add_tensor(f"{name}.{half}", pair[half].astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path

"""How many layers go to the GPUs and what they take there, from a model file's tensors
(``num_gpu``; ``/api/ps``'s ``size_vram``). The arithmetic runs on models written by the
``gguf`` package, and on the real SmolLM2 against what the loaded engine counts."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from power_backend_llamacpp.devices import list_devices, list_gpus
from power_backend_llamacpp.gpu_layers import ModelLayers, graph_bytes, model_layers
from power_backend_llamacpp.offload import ON_THE_CPU, plan_offload
from power_core.errors import InvalidRequest
from power_core.gguf import read_gguf_info
from power_core.types import LoadOptions

EMBD, VOCAB, HEADS = 8, 16, 2


def write_layered_model(
    path: Path, *, layers: int = 3, tied: bool = True, kv_heads: int | list[int] = 1
) -> Path:
    """A llama-shaped header: layer N's tensors hold (N + 1) x 64 f32 values, so that each
    layer has its own size; an output layer of its own unless ``tied``."""
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(layers)
    writer.add_embedding_length(EMBD)
    writer.add_head_count(HEADS)
    if isinstance(kv_heads, list):
        writer.add_array("llama.attention.head_count_kv", kv_heads)
    else:
        writer.add_head_count_kv(kv_heads)
    writer.add_tensor("token_embd.weight", np.zeros((VOCAB, EMBD), dtype=np.float32))
    for layer in range(layers):
        values = np.zeros(64 * (layer + 1), dtype=np.float32)
        writer.add_tensor(f"blk.{layer}.attn_q.weight", values)
        writer.add_tensor(f"blk.{layer}.ffn_norm.weight", np.zeros(EMBD, dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.zeros(EMBD, dtype=np.float32))
    if not tied:
        writer.add_tensor("output.weight", np.zeros((VOCAB, EMBD), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def layers_of(path: Path, *, num_ctx: int = 10, num_parallel: int = 1) -> ModelLayers:
    return model_layers(
        read_gguf_info(path),
        num_ctx=num_ctx,
        num_parallel=num_parallel,
        n_ubatch=4,
        kv_bytes_per_element=2,
        flash_attention=False,
    )


def test_each_layer_counts_its_own_tensors_and_its_kv_cache(tmp_path: Path) -> None:
    layers = layers_of(write_layered_model(tmp_path / "m.gguf"), num_ctx=10, num_parallel=3)
    assert layers.count == 3
    assert layers.weights == tuple(4 * (64 * (n + 1) + EMBD) for n in range(3))
    # one KV head of EMBD / HEADS values for keys and as many for values, f16, 30 cells
    assert layers.kv_cache == (1 * 2 * (EMBD // HEADS) * 30 * 2,) * 3


def test_layers_are_offloaded_from_the_last_and_the_output_layer_after_all(
    tmp_path: Path,
) -> None:
    layers = layers_of(write_layered_model(tmp_path / "m.gguf", tied=False))
    weights, kv = layers.weights, layers.kv_cache
    assert layers.bytes_on_gpu(0) == 0
    assert layers.bytes_on_gpu(1) == weights[2] + kv[2]
    assert layers.bytes_on_gpu(3) == sum(weights) + sum(kv)
    # the output layer: its norm and its own weight
    assert layers.output == 4 * EMBD + 4 * VOCAB * EMBD
    assert layers.bytes_on_gpu(4) == sum(weights) + sum(kv) + layers.output
    assert layers.bytes_on_gpu(99) == layers.bytes_on_gpu(4)


def test_tied_embeddings_are_copied_to_the_output_layer(tmp_path: Path) -> None:
    tied = layers_of(write_layered_model(tmp_path / "tied.gguf", tied=True))
    untied = layers_of(write_layered_model(tmp_path / "untied.gguf", tied=False))
    # llama.cpp loads the shared table twice: in host memory for the input, and with
    # the output layer
    assert tied.output == untied.output == 4 * EMBD + 4 * VOCAB * EMBD


def test_as_many_layers_as_fit_beside_the_compute_buffers(tmp_path: Path) -> None:
    layers = layers_of(write_layered_model(tmp_path / "m.gguf"))
    assert layers.graph > 0
    for fitting in range(5):
        exact = layers.graph + layers.bytes_on_gpu(fitting)
        assert layers.layers_that_fit(exact) == fitting
        if fitting:
            assert layers.layers_that_fit(exact - 1) == fitting - 1
    assert layers.layers_that_fit(layers.graph - 1) == 0
    assert layers.layers_that_fit(10**12) == layers.count + 1


def test_per_layer_kv_heads(tmp_path: Path) -> None:
    layers = layers_of(write_layered_model(tmp_path / "m.gguf", kv_heads=[2, 0, 1]))
    per_head = 2 * (EMBD // HEADS) * 10 * 2
    assert layers.kv_cache == (2 * per_head, 0, per_head)


def test_flash_attention_needs_no_buffer_for_each_heads_scores(tmp_path: Path) -> None:
    info = read_gguf_info(write_layered_model(tmp_path / "m.gguf"))
    scores = graph_bytes(info, num_ctx=100_000, n_ubatch=4, flash=False)
    flash = graph_bytes(info, num_ctx=100_000, n_ubatch=4, flash=True)
    assert scores == 4 * 4 * (1 + 4 * EMBD + 100_000 * (1 + HEADS))
    # then the larger of the logits and the attention's other intermediates
    assert flash == max(4 * 4 * (EMBD + VOCAB), 4 * 4 * (1 + 4 * EMBD))
    assert flash < scores


def test_the_real_models_layers_add_up_to_its_file(model_path: Path) -> None:
    info = read_gguf_info(model_path)
    layers = model_layers(
        info,
        num_ctx=1024,
        num_parallel=4,
        n_ubatch=256,
        kv_bytes_per_element=2,
        flash_attention=False,
    )
    tensors = {tensor.name: tensor.n_bytes for tensor in info.tensors}
    assert layers.count == info.arch_value("block_count") == 30
    assert "output.weight" not in tensors  # SmolLM2 ties its output to its embeddings
    assert sum(layers.weights) + tensors["token_embd.weight"] + tensors[
        "output_norm.weight"
    ] == sum(tensors.values())
    assert layers.output == tensors["token_embd.weight"] + tensors["output_norm.weight"]


def test_the_real_models_kv_cache_is_what_the_engine_counts(model_path: Path) -> None:
    """The per-layer KV estimate and the loaded engine's size agree (f16, 2 x 512 cells)."""
    from power_backend_llamacpp import LlamaCppBackend
    from power_core.engine import LoadSpec

    options = LoadOptions(num_ctx=512, num_batch=64, num_parallel=2, num_thread=2)
    engine = LlamaCppBackend().load(
        LoadSpec("kv:test", model_path, "sha256:" + "0" * 64, "gguf", options)
    )
    try:
        layers = model_layers(
            read_gguf_info(model_path),
            num_ctx=512,
            num_parallel=2,
            n_ubatch=64,
            kv_bytes_per_element=2,
            flash_attention=False,
        )
        import llama_cpp as lc

        weights = int(lc.llama_model_size(engine._model))
        assert engine.info.size_bytes - weights == sum(layers.kv_cache)
        assert engine.info.gpu_bytes == (layers.bytes_on_gpu(31) if list_gpus() else 0)
    finally:
        engine.close()


def test_llama_cpp_lists_its_cpu_and_every_gpu_it_offloads_to() -> None:
    devices = list_devices()
    cpu = [device for device in devices if device.kind == "cpu"]
    assert len(cpu) == 1 and cpu[0].total_bytes > 0 and cpu[0].description
    import llama_cpp as lc

    expected = [d for d in devices if d.is_gpu] if lc.llama_supports_gpu_offload() else []
    assert list_gpus() == expected


def test_without_gpus_nothing_is_offloaded_whatever_was_asked(model_path: Path) -> None:
    """As in Ollama, a Modelfile's num_gpu and main_gpu mean nothing on a machine without
    GPUs; where llama.cpp has them, a main_gpu beyond the last is refused."""
    asked = LoadOptions(num_gpu=99, main_gpu=7)
    if list_gpus():
        with pytest.raises(InvalidRequest, match="main_gpu must be below") as caught:
            plan_offload(model_path, "m", asked, n_ubatch=64, kv_bytes_per_element=2)
        assert caught.value.param == "main_gpu"
    else:
        assert plan_offload(model_path, "m", asked, n_ubatch=64, kv_bytes_per_element=2) == (
            ON_THE_CPU
        )
    none = LoadOptions(num_gpu=0)
    assert plan_offload(model_path, "m", none, n_ubatch=64, kv_bytes_per_element=2) == ON_THE_CPU

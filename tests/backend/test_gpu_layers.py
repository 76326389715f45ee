"""How many layers go to the GPUs and what they take there, from a model file's tensors
(``num_gpu``; ``/api/ps``'s ``size_vram``). The arithmetic runs on models written by the
``gguf`` package, and on the real SmolLM2 against what the loaded engine counts. Where a
plan needs GPUs, the list llama.cpp would give is replaced by GPUs described here (this
machine has none); the load itself runs the real llama.cpp, whose CPU build takes the
same parameters and ignores the GPU ones."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest

from power_backend_llamacpp import LlamaCppBackend, LlamaCppEngine, offload
from power_backend_llamacpp.devices import Device, DevicesUnknown, list_devices, list_gpus
from power_backend_llamacpp.gpu_layers import (
    RESERVE_PER_GPU,
    ModelLayers,
    context_cells,
    graph_bytes,
    head_sizes,
    model_layers,
    usable_cache_type,
)
from power_backend_llamacpp.offload import (
    ON_THE_CPU,
    bytes_per_gpu,
    layers_that_fit,
    plan_offload,
)
from power_core.engine import LoadSpec
from power_core.errors import InvalidRequest
from power_core.gguf import read_gguf_info
from power_core.types import LoadOptions

EMBD, VOCAB, HEADS = 8, 16, 2
GIB = 2**30


def gpu(
    name: str = "CUDA0", free: int = 80 * GIB, kind: str = "gpu", backend: str = "CUDA"
) -> Device:
    return Device(name, "a GPU described by the test", kind, free, free, backend)


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Device]]:
    """The GPUs llama.cpp is said to see: fill the list a test gets."""
    seen: list[Device] = []
    monkeypatch.setattr(offload, "list_gpus", lambda: list(seen))
    monkeypatch.setattr(offload, "_no_gpus", None)
    offload._gpus_at_start.cache_clear()
    yield seen
    offload._gpus_at_start.cache_clear()


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
    # one KV head of EMBD / HEADS values for keys and as many for values, f16, and the
    # cells llama.cpp allocates for 3 sequences of 10: each padded to 256
    assert layers.kv_cache == (1 * 2 * (EMBD // HEADS) * 768 * 2,) * 3


def test_cells_are_padded_as_llama_cpp_pads_them() -> None:
    assert context_cells(100, 1) == 256
    assert context_cells(256, 1) == 256
    assert context_cells(300, 2) == 1024  # 600 -> 768 in all, 384 -> 512 a sequence
    assert context_cells(2048, 8) == 16384


def test_the_output_layer_goes_first_then_the_layers_from_the_last(tmp_path: Path) -> None:
    """llama.cpp's row: layers 0..n-1, then the output layer; n_gpu_layers takes its end."""
    layers = layers_of(write_layered_model(tmp_path / "m.gguf", tied=False))
    weights, kv = layers.weights, layers.kv_cache
    assert layers.output == 4 * EMBD + 4 * VOCAB * EMBD  # its norm and its own weight
    assert layers.bytes_on_gpu(0) == 0
    assert layers.bytes_on_gpu(1) == layers.output
    assert layers.bytes_on_gpu(2) == layers.output + weights[2] + kv[2]
    assert layers.bytes_on_gpu(4) == layers.output + sum(weights) + sum(kv)
    assert layers.bytes_on_gpu(99) == layers.bytes_on_gpu(4)
    assert list(layers.offloaded(3)) == [1, 2]
    assert layers.kv_on_gpu(3) == kv[1] + kv[2]


def test_tied_embeddings_are_copied_to_the_output_layer(tmp_path: Path) -> None:
    tied = layers_of(write_layered_model(tmp_path / "tied.gguf", tied=True))
    untied = layers_of(write_layered_model(tmp_path / "untied.gguf", tied=False))
    # llama.cpp loads the shared table twice: in host memory for the input, and with
    # the output layer
    assert tied.output == untied.output == 4 * EMBD + 4 * VOCAB * EMBD


def test_as_many_of_the_row_as_fit_the_budget(tmp_path: Path) -> None:
    layers = layers_of(write_layered_model(tmp_path / "m.gguf"))
    for fitting in range(1, 5):
        exact = layers.bytes_on_gpu(fitting)
        assert layers.layers_that_fit(exact) == fitting
        assert layers.layers_that_fit(exact - 1) == fitting - 1
    assert layers.layers_that_fit(0) == 0
    assert layers.layers_that_fit(10**12) == layers.count + 1


def test_per_layer_kv_heads_and_layers_without_attention(tmp_path: Path) -> None:
    layers = layers_of(write_layered_model(tmp_path / "m.gguf", kv_heads=[2, 0, 1]))
    per_head = 2 * (EMBD // HEADS) * 256 * 2
    assert layers.kv_cache == (2 * per_head, 0, per_head)
    # a recurrent model (Mamba's GGUF has no attention heads) keeps a small fixed state
    recurrent = tmp_path / "recurrent.gguf"
    writer = gguf.GGUFWriter(recurrent, "mamba")
    writer.add_block_count(2)
    writer.add_embedding_length(EMBD)
    for layer in range(2):
        writer.add_tensor(f"blk.{layer}.ssm_in.weight", np.zeros(64, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert layers_of(recurrent).kv_cache == (0, 0)


def test_flash_attention_needs_no_buffer_for_each_heads_scores(tmp_path: Path) -> None:
    info = read_gguf_info(write_layered_model(tmp_path / "m.gguf"))
    scores = graph_bytes(info, num_ctx=100_000, n_ubatch=4, flash=False)
    flash = graph_bytes(info, num_ctx=100_000, n_ubatch=4, flash=True)
    assert scores == 4 * 4 * (1 + 4 * EMBD + 100_096 * (1 + HEADS))  # cells padded to 256
    # then the larger of the logits and the attention's other intermediates
    assert flash == max(4 * 4 * (EMBD + VOCAB), 4 * 4 * (1 + 4 * EMBD))
    assert flash < scores


def test_a_quantized_cache_needs_heads_of_whole_blocks(tmp_path: Path) -> None:
    assert head_sizes(read_gguf_info(write_layered_model(tmp_path / "m.gguf"))) == (4, 4)
    assert usable_cache_type("q8_0", (4, 4)) == "f16"
    assert usable_cache_type("q8_0", (64, 64)) == "q8_0"
    assert usable_cache_type("q4_0", (80, 80)) == "f16"  # Phi-2's heads
    assert usable_cache_type("f16", (80, 80)) == "f16"


def test_layers_go_to_each_gpu_in_proportion_to_its_free_memory(tmp_path: Path) -> None:
    """llama.cpp's split: the k-th of n offloaded layers goes to the first GPU whose
    running share of the free memory is above k / n; the output layer is the last."""
    layers = layers_of(write_layered_model(tmp_path / "m.gguf"))
    w, kv = layers.weights, layers.kv_cache
    # two equal GPUs, 3 layers and the output layer: 0 and 1 on the first, 2 and the
    # output layer on the second
    assert bytes_per_gpu(layers, 4, [GIB, GIB]) == [
        w[0] + kv[0] + w[1] + kv[1],
        w[2] + kv[2] + layers.output,
    ]
    # 2 of the row: layer 2 on the first, the output layer on the second
    assert bytes_per_gpu(layers, 2, [GIB, GIB]) == [w[2] + kv[2], layers.output]
    # a GPU with a sliver of the free memory gets nothing
    assert bytes_per_gpu(layers, 4, [100 * GIB, GIB])[1] == 0
    assert bytes_per_gpu(layers, 4, [GIB]) == [layers.bytes_on_gpu(4)]
    assert bytes_per_gpu(layers, 0, [GIB, GIB]) == [0, 0]


def test_each_gpu_must_hold_its_share_beside_its_buffers(tmp_path: Path) -> None:
    layers = layers_of(write_layered_model(tmp_path / "m.gguf"))
    overhead = layers.graph + RESERVE_PER_GPU
    one = [gpu(free=overhead + layers.bytes_on_gpu(3))]
    assert layers_that_fit(layers, one) == 3
    one = [gpu(free=overhead + layers.bytes_on_gpu(3) - 1)]
    assert layers_that_fit(layers, one) == 2
    # two GPUs of equal free memory: each needs its own buffers for its half
    half = max(bytes_per_gpu(layers, 4, [GIB, GIB]))
    pair = [gpu("CUDA0", overhead + half), gpu("CUDA1", overhead + half)]
    assert layers_that_fit(layers, pair) == 4
    pair = [gpu("CUDA0", overhead + half - 1), gpu("CUDA1", overhead + half - 1)]
    assert layers_that_fit(layers, pair) < 4
    # a nearly full second GPU takes no layers, and does not stop the first from taking all
    busy = [gpu("CUDA0", 80 * GIB), gpu("CUDA1", overhead // 2)]
    assert layers_that_fit(layers, busy) == 4
    assert layers_that_fit(layers, [gpu(free=overhead)]) == 0


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


def load(model_path: Path, **options: object) -> LlamaCppEngine:
    settings: dict[str, object] = {"num_ctx": 512, "num_batch": 64, "num_parallel": 2}
    settings.update(options)
    spec = LoadSpec(
        "gpu:test",
        model_path,
        "sha256:" + "0" * 64,
        "gguf",
        LoadOptions(num_thread=2, **settings),
    )
    engine = LlamaCppBackend().load(spec)
    assert isinstance(engine, LlamaCppEngine)
    return engine


def test_the_real_models_kv_cache_is_what_the_engine_counts(model_path: Path) -> None:
    """The per-layer KV estimate and the loaded engine's size agree, padding included
    (2 sequences of 300 cells are 1,024 cells)."""
    import llama_cpp as lc

    engine = load(model_path, num_ctx=300)
    try:
        layers = model_layers(
            read_gguf_info(model_path),
            num_ctx=300,
            num_parallel=2,
            n_ubatch=64,
            kv_bytes_per_element=2,
            flash_attention=False,
        )
        weights = int(lc.llama_model_size(engine._model))
        assert engine.info.size_bytes - weights == sum(layers.kv_cache)
    finally:
        engine.close()


def test_llama_cpp_lists_its_cpu_and_every_gpu_it_offloads_to() -> None:
    devices = list_devices()
    cpu = [device for device in devices if device.kind == "cpu"]
    assert len(cpu) == 1 and cpu[0].total_bytes > 0 and cpu[0].description
    assert cpu[0].backend == "CPU"
    import llama_cpp as lc

    if lc.llama_supports_gpu_offload():
        assert {d.name for d in list_gpus()} <= {d.name for d in devices if d.kind != "cpu"}
    else:
        assert list_gpus() == []


def test_without_gpus_nothing_is_offloaded_whatever_was_asked(
    model_path: Path, gpus: list[Device]
) -> None:
    """As in Ollama, a Modelfile's num_gpu and main_gpu mean nothing without GPUs."""
    asked = LoadOptions(num_gpu=99, main_gpu=7)
    assert plan_offload(model_path, "m", asked, n_ubatch=64, cache_type="f16") == ON_THE_CPU
    LlamaCppBackend().check_options(asked)


def plan(model_path: Path, **options: object) -> offload.Offload:
    settings: dict[str, object] = {"num_ctx": 2048, "num_parallel": 4}
    settings.update(options)
    return plan_offload(
        model_path,
        "m",
        LoadOptions(**settings),
        n_ubatch=512,
        cache_type="f16",
    )


def real_layers(model_path: Path, num_ctx: int = 2048) -> ModelLayers:
    return model_layers(
        read_gguf_info(model_path),
        num_ctx=num_ctx,
        num_parallel=4,
        n_ubatch=512,
        kv_bytes_per_element=2,
        flash_attention=False,
    )


def test_unset_num_gpu_offloads_as_many_as_fit(model_path: Path, gpus: list[Device]) -> None:
    layers = real_layers(model_path)
    gpus.append(gpu(free=80 * GIB))
    everything = plan(model_path)
    assert everything.layers == 31
    assert everything.gpu_bytes == layers.bytes_on_gpu(31)
    assert everything.kv_off_host == sum(layers.kv_cache)
    assert everything.only_gpu is None
    # room for the output layer and 10 layers, beside the compute buffers and the reserve
    gpus[0] = gpu(free=RESERVE_PER_GPU + layers.graph + layers.bytes_on_gpu(11))
    assert plan(model_path).layers == 11
    gpus[0] = gpu(free=RESERVE_PER_GPU + layers.graph + layers.bytes_on_gpu(11) - 1)
    assert plan(model_path).layers == 10
    gpus[0] = gpu(free=RESERVE_PER_GPU)
    assert plan(model_path).layers == 0


def test_num_gpu_is_taken_as_asked_up_to_the_whole_row(
    model_path: Path, gpus: list[Device]
) -> None:
    gpus.append(gpu(free=GIB))  # too little for all: asked for, they are tried anyway
    assert plan(model_path, num_gpu=31).layers == 31
    assert plan(model_path, num_gpu=500).layers == 31
    assert plan(model_path, num_gpu=5).layers == 5
    assert plan(model_path, num_gpu=0) == ON_THE_CPU


def test_main_gpu_puts_every_layer_on_that_gpu(model_path: Path, gpus: list[Device]) -> None:
    layers = real_layers(model_path)
    gpus.extend([gpu("CUDA0", 80 * GIB), gpu("CUDA1", RESERVE_PER_GPU + layers.graph)])
    spread = plan(model_path)
    assert spread.only_gpu is None and spread.layers == 31  # CUDA1's sliver gets none
    alone = plan(model_path, main_gpu=0)
    assert alone.only_gpu == 0 and alone.layers == 31
    with pytest.raises(InvalidRequest, match=r"main_gpu must be below 2: llama\.cpp sees 0: CUDA0"):
        plan(model_path, main_gpu=2)
    # refused before a loaded model would be unloaded for it
    with pytest.raises(InvalidRequest, match="main_gpu must be below 2") as refused:
        LlamaCppBackend().check_options(LoadOptions(main_gpu=2))
    assert refused.value.param == "main_gpu"


def test_a_gpu_sharing_the_hosts_memory_leaves_the_kv_cache_in_ram(
    model_path: Path, gpus: list[Device]
) -> None:
    gpus.append(gpu("Vulkan0", kind="igpu", backend="Vulkan"))
    assert plan(model_path).kv_off_host == 0
    gpus[0] = gpu("MTL0", backend="Metal")
    assert plan(model_path).kv_off_host == 0


def test_a_build_that_cannot_list_its_devices_offloads_as_llama_cpp_would(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unknown() -> list[Device]:
        raise DevicesUnknown("llama.cpp's devices cannot be listed: no such symbol")

    monkeypatch.setattr(offload, "list_gpus", unknown)
    assert plan(model_path).layers == 31
    assert plan(model_path, num_gpu=4).layers == 4
    assert plan(model_path).kv_off_host == 0  # where the layers went is not known


class ParamsSeen:
    """llama.cpp's model loader, noting the parameters each load gave it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import llama_cpp as lc

        self.params: list[dict[str, int]] = []
        real = lc.llama_model_load_from_file

        def noting(path: bytes, params: object) -> object:
            self.params.append(
                {
                    name: int(getattr(params, name))
                    for name in ("n_gpu_layers", "split_mode", "main_gpu", "load_mode")
                }
            )
            return real(path, params)

        monkeypatch.setattr(lc, "llama_model_load_from_file", noting)


def test_a_load_hands_llama_cpp_the_plan(
    model_path: Path, gpus: list[Device], monkeypatch: pytest.MonkeyPatch
) -> None:
    import llama_cpp as lc

    seen = ParamsSeen(monkeypatch)
    gpus.extend([gpu("CUDA0"), gpu("CUDA1")])
    for options, n_gpu_layers, split_mode, main_gpu in (
        ({}, 31, lc.LLAMA_SPLIT_MODE_LAYER, 0),
        ({"num_gpu": 7}, 7, lc.LLAMA_SPLIT_MODE_LAYER, 0),
        ({"main_gpu": 1}, 31, lc.LLAMA_SPLIT_MODE_NONE, 1),
        ({"num_gpu": 0, "main_gpu": 1}, 0, lc.LLAMA_SPLIT_MODE_LAYER, 0),
    ):
        engine = load(model_path, **options)
        try:
            expected = plan_offload(
                model_path,
                "m",
                LoadOptions(num_ctx=512, num_batch=64, num_parallel=2, **options),
                n_ubatch=64,
                cache_type="f16",
            )
            assert engine.info.gpu_bytes == min(expected.gpu_bytes, engine.info.size_bytes)
        finally:
            engine.close()
        assert seen.params[-1]["n_gpu_layers"] == n_gpu_layers, options
        assert seen.params[-1]["split_mode"] == split_mode, options
        assert seen.params[-1]["main_gpu"] == main_gpu, options


def test_use_mlock_locks_the_weights_in_ram(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import resource

    import llama_cpp as lc

    seen = ParamsSeen(monkeypatch)
    engine = load(model_path, use_mlock=True)
    try:
        assert seen.params[-1]["load_mode"] == lc.LLAMA_LOAD_MODE_MMAP_MLOCK
        locked = locked_kib()
        limit = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
        if os.geteuid() == 0 or limit == resource.RLIM_INFINITY or limit > 2 * 98_000_000:
            assert locked > 90_000, locked  # the 98 MB of weights
        else:  # llama.cpp warns and loads them unlocked
            assert engine.info.size_bytes > 0
    finally:
        engine.close()
    engine = load(model_path, use_mlock=True, use_mmap=False)
    engine.close()
    assert seen.params[-1]["load_mode"] == lc.LLAMA_LOAD_MODE_MLOCK
    engine = load(model_path)
    engine.close()
    # mapped, unless a GPU it offloads to cannot take mapped weights
    assert seen.params[-1]["load_mode"] == lc.LLAMA_LOAD_MODE_AUTO


def locked_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmLck:"):
                return int(line.split()[1])
    return 0


def test_a_quantized_cache_that_falls_back_to_f16_is_planned_at_f16(
    tmp_path: Path, gpus: list[Device]
) -> None:
    """Heads of 4 values are no whole q8_0 block: the cache stays f16, and is planned so."""
    path = write_layered_model(tmp_path / "m.gguf")
    gpus.append(gpu())
    options = LoadOptions(num_ctx=10, num_parallel=1, flash_attention=True, kv_cache_type="q8_0")
    planned = plan_offload(path, "m", options, n_ubatch=4, cache_type="q8_0")
    at_f16 = model_layers(
        read_gguf_info(path),
        num_ctx=10,
        num_parallel=1,
        n_ubatch=4,
        kv_bytes_per_element=2,
        flash_attention=True,
    )
    assert planned.layers == 4
    assert planned.gpu_bytes == at_f16.bytes_on_gpu(4)


def test_llama_cpps_own_choice_of_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """As llama.cpp chooses by default (``llama.cpp``): RPC servers first, then discrete
    GPUs (one two backends see counted once), integrated ones only where there are none,
    and those of one backend; accelerators and the CPU hold no layers."""
    import llama_cpp as lc

    from power_backend_llamacpp import devices

    listed: list[Device] = []
    monkeypatch.setattr(lc, "llama_supports_gpu_offload", lambda: True)
    monkeypatch.setattr(devices, "list_devices", lambda: list(listed))

    def named(*found: Device) -> list[str]:
        listed[:] = found
        return [device.name for device in devices.list_gpus()]

    cpu = Device("CPU", "cpu", "cpu", GIB, GIB, "CPU")
    amx = Device("AMX", "amx", "accel", 0, 0, "CPU")
    cuda0 = Device("CUDA0", "card", "gpu", GIB, GIB, "CUDA", "0000:01:00.0")
    vulkan0 = Device("Vulkan0", "card", "gpu", GIB, GIB, "Vulkan", "0000:01:00.0")
    vulkan1 = Device("Vulkan1", "other", "gpu", GIB, GIB, "Vulkan", "0000:02:00.0")
    rpc = Device("RPC0", "remote", "gpu", GIB, GIB, "RPC")
    igpu = Device("Vulkan2", "igpu", "igpu", GIB, GIB, "Vulkan")
    sycl_igpu = Device("SYCL0", "igpu", "igpu", GIB, GIB, "SYCL")
    assert named(cpu, amx) == []
    assert named(cpu, cuda0, vulkan0, vulkan1) == ["CUDA0", "Vulkan1"]
    assert named(cpu, cuda0, rpc) == ["RPC0", "CUDA0"]
    assert named(cpu, igpu, cuda0) == ["CUDA0"]
    assert named(cpu, igpu, sycl_igpu) == ["Vulkan2"]


def test_a_load_out_of_memory_with_the_layers_asked_names_num_gpu() -> None:
    from power_backend_llamacpp.backend import _too_many_layers

    planned = offload.Offload(layers=31, gpu_bytes=2**30)
    alloc = [
        "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 1440.00 MiB on device 0: "
        "cudaMalloc failed: out of memory"
    ]
    failed = _too_many_layers(LoadOptions(num_gpu=31), planned, alloc)
    assert failed is not None and failed.param == "num_gpu" and failed.http_status == 500
    assert "num_gpu=31" in failed.message
    # as many as fit (unset), or a failure that is not memory: not the option's
    assert _too_many_layers(LoadOptions(num_gpu=-1), planned, alloc) is None
    assert _too_many_layers(LoadOptions(num_gpu=31), planned, ["failed to open x"]) is None
    assert _too_many_layers(LoadOptions(num_gpu=31), offload.ON_THE_CPU, alloc) is None

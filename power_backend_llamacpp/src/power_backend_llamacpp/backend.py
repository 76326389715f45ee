"""The llama.cpp backend: loads GGUF files into :class:`~power_backend_llamacpp.LlamaCppEngine`.

``llama_cpp`` and ``numpy`` are imported on first load, never at import time, so that the
plugin loader (run by every CLI command) stays fast.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar, cast

from power_backend_llamacpp import limits, model_checks
from power_backend_llamacpp.extra_buffers import use_extra_buffers
from power_backend_llamacpp.gpu_layers import context_cells, head_sizes_from, usable_cache_type
from power_backend_llamacpp.offload import (
    KV_BYTES_PER_ELEMENT,
    Offload,
    check_main_gpu,
    plan_offload,
    without_gpus_seen,
)
from power_core.concurrency import allocate_native_lock, start_native_thread, unpatched
from power_core.engine import LoadSpec, QuantizeSpec
from power_core.errors import InvalidModelFile, InvalidRequest, ModelLoadFailed, PowerError
from power_core.gguf import GGUFInfo
from power_core.types import LoadOptions

if TYPE_CHECKING:
    from pathlib import Path

    from power_backend_llamacpp.engine import LlamaCppEngine
    from power_backend_llamacpp.images import ImageReader

T = TypeVar("T")
log = logging.getLogger(__name__)

_init_lock = allocate_native_lock()
_initialised = False
#: the log callback must outlive every native call that may log
_log_callback: Any = None
#: also given every line llama.cpp logs, while listening (:func:`listening_to_llama_log`);
#: replaced whole, never changed in place, so the log callback reads it without a lock
_log_listeners: tuple[Callable[[int, bytes], None], ...] = ()

#: KV cache types by Ollama's names: ggml's types
_GGML_TYPES = {"f16": "GGML_TYPE_F16", "q8_0": "GGML_TYPE_Q8_0", "q4_0": "GGML_TYPE_Q4_0"}

#: llama.cpp's ``GGML_LOG_LEVEL_ERROR``; everything below it is progress chatter
_LOG_LEVEL_ERROR = 4


def _init_llama_cpp() -> None:
    """``llama_backend_init`` once per process, with llama.cpp's logging cut to errors."""
    global _initialised, _log_callback
    with _init_lock:
        if _initialised:
            return
        import ctypes

        import llama_cpp as lc

        def log(level: int, text: bytes, _user_data: Any) -> None:
            # may run on the engine thread: write straight to stderr, no (gevent) locks
            if level == _LOG_LEVEL_ERROR and text:
                sys.stderr.write(text.decode("utf-8", errors="replace"))
            if text:
                for listener in _log_listeners:
                    listener(level, text)

        _log_callback = lc.llama_log_callback(log)
        lc.llama_log_set(_log_callback, ctypes.c_void_p(0))
        from llama_cpp import mtmd_cpp  # the projectors' library logs on its own

        mtmd_cpp.mtmd_helper_log_set(_log_callback, ctypes.c_void_p(0))
        lc.llama_backend_init()
        _initialised = True
    _log_devices()


def _log_devices() -> None:
    """Say once, at the first load, where models will run (as Ollama logs its "inference
    compute"): a GPU build that sees no GPU is the usual reason a model is slow."""
    from power_backend_llamacpp.devices import DevicesUnknown, describe, list_gpus

    try:
        gpus = list_gpus()
    except DevicesUnknown as exc:
        log.info("llama.cpp: %s", exc)
        return
    if gpus:
        log.info("llama.cpp offloads layers to %s", "; ".join(describe(gpu) for gpu in gpus))
    else:
        log.info("llama.cpp offloads to no GPU: models run on the CPU")


@contextmanager
def listening_to_llama_log(listener: Callable[[int, bytes], None]) -> Iterator[None]:
    """Give ``listener(level, text)`` every line llama.cpp logs, from any thread, while in
    the block. The log is the process's: a listener keeps the lines of its own thread."""
    global _log_listeners
    _init_llama_cpp()
    with _init_lock:
        _log_listeners = (*_log_listeners, listener)
    try:
        yield
    finally:
        with _init_lock:
            _log_listeners = tuple(other for other in _log_listeners if other is not listener)


#: how llama.cpp reports any exception of a load: the file's fault (a wrong shape, an
#: unknown architecture, a bad hyperparameter) unless it is one of the machine's
_FILE_REFUSAL = "error loading model: "
_MACHINE_FAULTS = (
    "unable to allocate",
    "failed to allocate",
    "bad_alloc",
    "mmap failed",
    "read error",
    "failed to open",
    "No space left",
)
#: what llama.cpp logs when a buffer (weights, KV cache, compute) cannot be allocated
_MEMORY_FAULTS = ("unable to allocate", "failed to allocate", "out of memory", "bad_alloc")
#: the loader's "failed to load model from <path>", whose cause GGUF's reader logged first
_GGUF_REFUSAL = "failed to load model from"
_FUNCTION_PREFIX = re.compile(r"^\w+: ")


def _errors_of_this_thread(errors: list[str]) -> Callable[[int, bytes], None]:
    """A log listener keeping the error lines logged on the thread that makes it."""
    get_ident = unpatched("_thread", "get_ident")
    thread = get_ident()

    def listen(level: int, text: bytes) -> None:
        if level == _LOG_LEVEL_ERROR and get_ident() == thread:
            errors.append(text.decode("utf-8", errors="replace").strip())

    return listen


def _load_failure(name: str, path: Path, errors: list[str]) -> PowerError:
    """What a failed ``llama_model_load_from_file`` was, by what llama.cpp logged: a file
    it refuses is the model's fault (:class:`InvalidModelFile`, a 400 with llama.cpp's
    reason); memory, a failed read or open is this machine's (:class:`ModelLoadFailed`, a
    500). The model is named, never the file where it lies."""
    for index, line in enumerate(errors):
        if _FILE_REFUSAL not in line:
            continue
        reason = line.split(_FILE_REFUSAL, 1)[1]
        if any(fault in reason for fault in _MACHINE_FAULTS):
            break
        if _GGUF_REFUSAL in reason and index > 0:  # the reader said why just before
            reason = _FUNCTION_PREFIX.sub("", errors[index - 1], count=1)
        return InvalidModelFile(f"llama.cpp cannot load '{name}': {_unplaced(reason, path)}")
    detail = _unplaced("; ".join(errors), path) or "no reason given"
    return ModelLoadFailed(f"llama.cpp could not load '{name}': {detail}")


def _unplaced(text: str, path: Path) -> str:
    return text.replace(str(path), "the model file")


def default_threads() -> int:
    """Threads for decoding when the model's options leave it open: the usable cores,
    halved on larger machines where they are likely hyper-threads."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return cores if cores <= 4 else cores // 2


def _on_a_passing_thread(load: Callable[[], T], discard: Callable[[T], None]) -> T:
    """Run ``load`` on a new OS thread that ends right after, blocking this one meanwhile;
    if this wait is interrupted (Ctrl-C), ``discard`` frees what ``load`` returns.

    Putting weights in AMX buffers converts them with an OpenMP team of the loading thread,
    which lives as long as that thread. libgomp counts the threads of all live teams, and
    once they outnumber the CPUs its barriers stop spinning and sleep at once; a decode step
    crosses hundreds of them. Loaded on a thread that stays (a caller's main thread), the
    engine's thread then decoded 7 times slower (SmolLM2-135M, 2 cores, a bare ctypes loop:
    33-35 ms a token against 4.7, back to 4.7 as soon as the loading thread ended)."""
    done = allocate_native_lock()
    done.acquire()
    state = allocate_native_lock()
    outcome: list[tuple[bool, Any]] = []
    abandoned = False

    def work() -> None:
        try:
            result: tuple[bool, Any] = (True, load())
        except BaseException as exc:  # re-raised on the calling thread
            result = (False, exc)
        with state:
            if abandoned:
                if result[0]:
                    discard(result[1])
                return
            outcome.append(result)
        done.release()

    start_native_thread(work, "a3s-power-llama-load")
    try:
        done.acquire()
    except BaseException:
        with state:
            abandoned = True
            finished = list(outcome)
        if finished and finished[0][0]:
            discard(finished[0][1])
        raise
    succeeded, value = outcome[0]
    if not succeeded:
        raise value
    return cast(T, value)


class LlamaCppBackend:
    """Runs GGUF models with llama.cpp (via llama-cpp-python's low-level bindings)."""

    name = "llamacpp"
    #: applies a model's LoRA adapters (:attr:`LoadSpec.adapters`)
    applies_adapters = True

    def supports(self, model_format: str) -> bool:
        """Whether ``model_format`` is ``"gguf"``."""
        return model_format.lower() == "gguf"

    def check_options(self, options: LoadOptions) -> None:
        """Refuse load options llama.cpp cannot honour (:class:`InvalidRequest`); the
        scheduler asks before it unloads a model to reload it with them."""
        limits.check_options(options)
        check_main_gpu(options)

    def effective_options(self, options: LoadOptions) -> LoadOptions:
        """``options`` with the GPU ones made equal where llama.cpp offloads to no GPU, so
        that a request's ``num_gpu`` or ``main_gpu`` does not reload a model it changes
        nothing for (known once a load has asked llama.cpp)."""
        if without_gpus_seen():
            return replace(options, num_gpu=-1, main_gpu=None)
        if options.num_gpu == 0:  # on the CPU: no GPU to put it on
            return replace(options, main_gpu=None)
        return options

    def quantize(self, spec: QuantizeSpec) -> None:
        """Quantize a GGUF file with llama.cpp (``llama_model_quantize``); raises
        :class:`~power_core.errors.QuantizeFailed` with llama.cpp's reason."""
        from power_backend_llamacpp.quantize import quantize_gguf

        quantize_gguf(spec, default_threads())

    def weights_problem(self, path: Path) -> str | None:
        """Why llama.cpp would abort the process on these weights, if a value of their
        header is known to make it (the core asks at create; a load refuses them too)."""
        return model_checks.weights_problem(path)

    def projector_problem(self, path: Path) -> str | None:
        """Why llama.cpp would abort the process on this multimodal projector, if it would."""
        return model_checks.projector_problem(path)

    def adapter_problem(self, changed: set[str], model: GGUFInfo) -> str | None:
        """Why llama.cpp cannot apply a LoRA adapter changing the tensors ``changed`` to the
        weights ``model`` describes, if it cannot (the core asks at create and before a
        load). On token embeddings the output layer shares (no ``output.weight``: tied
        embeddings, as in SmolLM2), llama.cpp multiplies the output by the pair the wrong
        way round and aborts the process (``ggml_can_mul_mat``)."""
        shared = not any(tensor.name == "output.weight" for tensor in model.tensors)
        if "token_embd.weight" in changed and shared:
            return (
                "changes 'token_embd.weight', which this model shares with its output layer; "
                "llama.cpp cannot apply an adapter to shared token embeddings"
            )
        return None

    def load(self, spec: LoadSpec) -> LlamaCppEngine:
        """Load ``spec.path`` and start its engine thread.

        Raises :class:`ModelLoadFailed` when llama.cpp cannot load the file or allocate the
        context, :class:`InvalidRequest` for impossible options.
        """
        options = spec.options
        self.check_options(options)
        cache_type = _kv_cache_type(options.kv_cache_type, options.flash_attention)
        if not spec.path.is_file():
            raise ModelLoadFailed(f"model file for '{spec.name}' not found at {spec.path}")
        _init_llama_cpp()
        import llama_cpp as lc

        from power_backend_llamacpp.engine import LlamaCppEngine
        from power_backend_llamacpp.images import ImageReader
        from power_backend_llamacpp.lora import LoraAdapters

        max_seqs = int(lc.llama_max_parallel_sequences())
        if options.num_parallel > max_seqs:
            raise InvalidRequest(f"num_parallel must be at most {max_seqs}", param="num_parallel")
        # generating sequences take one batch slot each, so the batch always fits them; a
        # batch larger than the context could never fill
        cells = options.num_ctx * options.num_parallel
        n_batch = min(max(options.num_batch, options.num_parallel), cells)
        n_ubatch = min(n_batch, options.num_batch) or n_batch
        model_params = lc.llama_model_default_params()
        model_params.load_mode = _load_mode(lc, options)
        model_params.use_extra_bufts = use_extra_buffers()

        errors: list[str] = []
        planned: list[Offload] = []

        def load_weights() -> Any:
            # refused here, not aborted in llama.cpp: the file is read on this thread too
            try:
                problem = model_checks.weights_problem(spec.path)
            except InvalidModelFile as exc:  # not even a GGUF header to read
                raise InvalidModelFile(f"cannot load '{spec.name}': {exc.message}") from None
            if problem is not None:
                raise InvalidModelFile(f"llama.cpp cannot load '{spec.name}': {problem}")
            offload = plan_offload(
                spec.path, spec.name, options, n_ubatch=n_ubatch, cache_type=cache_type
            )
            planned.append(offload)
            model_params.n_gpu_layers = offload.layers
            if offload.layers and offload.only_gpu is not None:
                model_params.split_mode = lc.LLAMA_SPLIT_MODE_NONE
                model_params.main_gpu = offload.only_gpu
            with listening_to_llama_log(_errors_of_this_thread(errors)):
                return lc.llama_model_load_from_file(str(spec.path).encode(), model_params)

        model = _on_a_passing_thread(
            load_weights, discard=lambda loaded: lc.llama_model_free(loaded) if loaded else None
        )
        if not model:
            failure = _load_failure(spec.name, spec.path, errors)
            if isinstance(failure, ModelLoadFailed) and planned:
                raise _too_many_layers(options, planned[0], errors) or failure
            raise failure
        offload = planned[0]
        try:
            adapters = LoraAdapters(model, spec.adapters, spec.name)
        except ModelLoadFailed:
            lc.llama_model_free(model)
            raise
        threads = options.num_thread or default_threads()
        ctx_params = lc.llama_context_default_params()
        ctx_params.n_ctx = cells
        ctx_params.n_seq_max = options.num_parallel
        # one KV stream per sequence: each gets exactly num_ctx cells and attends to its own
        ctx_params.kv_unified = False
        ctx_params.n_batch = n_batch
        ctx_params.n_ubatch = n_ubatch
        ctx_params.n_threads = threads
        ctx_params.n_threads_batch = threads
        # llama.cpp's default ("auto") turns it on wherever the device supports it. On CPUs
        # one stream decodes far slower with it once the context grows (SmolLM2-135M, 2
        # cores: 36 tokens/s against 64 at 1,200 tokens; 3% slower at a short context),
        # though 8 short streams batched went 9% faster; it is on only when asked for, as
        # in Ollama
        ctx_params.flash_attn_type = (
            lc.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if options.flash_attention
            else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        head_sizes = _head_sizes(lc, model)
        cache_type = _cache_type_for_heads(cache_type, head_sizes)
        try:
            # the offloaded layers' part of the cache is in GPU memory
            padded = context_cells(options.num_ctx, options.num_parallel)
            in_ram = _kv_cache_bytes(lc, model, padded, head_sizes, cache_type)
            limits.check_kv_cache_fits(options, max(0, in_ram - offload.kv_off_host))
        except InvalidRequest:
            lc.llama_model_free(model)
            raise
        ctx_params.type_k = ctx_params.type_v = getattr(lc, _GGML_TYPES[cache_type])
        ctx_params.no_perf = True
        context_errors: list[str] = []
        with listening_to_llama_log(_errors_of_this_thread(context_errors)):
            ctx = lc.llama_init_from_model(model, ctx_params)
        if not ctx:
            lc.llama_model_free(model)
            too_many = _too_many_layers(options, offload, context_errors)
            if too_many is not None:
                raise too_many
            raise ModelLoadFailed(
                f"llama.cpp could not create a context for '{spec.name}' with "
                f"num_ctx={options.num_ctx} x num_parallel={options.num_parallel} "
                + (
                    f"and {offload.layers} layers on the GPUs (not enough memory? a smaller "
                    "num_gpu or num_ctx needs less)"
                    if offload.layers
                    else "(not enough memory?)"
                )
            )
        try:
            adapters.apply(ctx)
        except ModelLoadFailed:
            lc.llama_free(ctx)
            lc.llama_model_free(model)
            raise
        images = None
        if spec.projector is not None:
            try:
                images = ImageReader(
                    spec.projector,
                    model,
                    n_threads=threads,
                    batch_tokens=ctx_params.n_ubatch,
                    name=spec.name,
                )
            except ModelLoadFailed as exc:  # the model still reads text
                log.warning("%s; '%s' loads without reading images", exc.message, spec.name)
            if images is not None and images.problem is not None:
                log.warning(
                    "cannot use the projector of '%s': %s; it loads without reading images",
                    spec.name,
                    images.problem,
                )
                images.close()
                images = None
        kv_bytes = _kv_cache_bytes(lc, model, int(lc.llama_n_ctx(ctx)), head_sizes, cache_type)
        if images is not None and spec.projector is not None:
            kv_bytes += spec.projector.stat().st_size  # the projector's weights, in memory
        info = _engine_info(lc, model, options.num_ctx, kv_bytes, images, offload.gpu_bytes)
        engine = LlamaCppEngine(
            name=spec.name,
            model=model,
            ctx=ctx,
            info=info,
            n_parallel=options.num_parallel,
            n_batch=n_batch,
            max_queue=options.max_queue,
            n_threads=threads,
            adapt_threads=options.adapt_threads,
            adapters=adapters,
            images=images,
        )
        engine.longest_token_bytes  # noqa: B018 - read here, on the loading thread, once
        return engine


def _load_mode(lc: Any, options: LoadOptions) -> int:
    """llama.cpp's load mode: mapped (``use_mmap``, where the GPUs allow) or read, locked in
    RAM (``use_mlock``) or not."""
    if options.use_mlock:
        return int(lc.LLAMA_LOAD_MODE_MMAP_MLOCK if options.use_mmap else lc.LLAMA_LOAD_MODE_MLOCK)
    # "auto" maps the file unless a GPU it offloads to cannot take mapped weights (CUDA's
    # integrated GPUs, OpenCL): then it reads them
    return int(lc.LLAMA_LOAD_MODE_AUTO if options.use_mmap else lc.LLAMA_LOAD_MODE_NONE)


def _too_many_layers(
    options: LoadOptions, offload: Offload, errors: list[str]
) -> ModelLoadFailed | None:
    """A load that ran out of memory with a set number of layers on the GPUs (``num_gpu``):
    the failure, naming the option (``param``), so that the scheduler answers a request
    that set it itself with a 400, and one that did not (the server's or the model's
    setting) with a 500. ``None`` for other failures."""
    if options.num_gpu <= 0 or not offload.layers:
        return None
    if not any(fault in line for line in errors for fault in _MEMORY_FAULTS):
        return None
    return ModelLoadFailed(
        f"llama.cpp ran out of memory loading the model with num_gpu={options.num_gpu} "
        f"layers on the GPUs (about {offload.gpu_bytes / 2**20:,.0f} MiB of weights and KV "
        "cache there, and compute buffers besides): ask for fewer layers, a smaller "
        "num_ctx, or leave num_gpu unset for as many as fit",
        param="num_gpu",
    )


def _kv_cache_type(requested: str, flash_attention: bool) -> str:
    """The KV cache type to use: a quantized one only with flash attention (llama.cpp needs
    it for quantized values; Ollama falls back to f16 the same way, with a warning)."""
    if requested not in _GGML_TYPES:
        raise InvalidRequest(
            f"kv_cache_type must be one of {', '.join(_GGML_TYPES)}", param="kv_cache_type"
        )
    if requested != "f16" and not flash_attention:
        log.warning("kv_cache_type %s needs flash_attention; the KV cache stays f16", requested)
        return "f16"
    return requested


def _cache_type_for_heads(cache_type: str, head_sizes: tuple[int, int]) -> str:
    """``cache_type``, or f16 where a head's size is not a whole number of the type's
    32-value blocks (llama.cpp then refuses the context, e.g. Phi-2's heads of 80)."""
    if usable_cache_type(cache_type, head_sizes) != cache_type:
        log.warning(
            "kv_cache_type %s needs heads of a multiple of 32 values (this model's: %s); "
            "the KV cache stays f16",
            cache_type,
            ", ".join(str(size) for size in sorted(set(head_sizes))),
        )
        return "f16"
    return cache_type


def _head_sizes(lc: Any, model: Any) -> tuple[int, int]:
    """The sizes of the model's key and value heads (GGUF ``key_length``/``value_length``,
    else the embedding size over the heads)."""
    from power_backend_llamacpp.embedding import model_meta

    arch = model_meta(model, "general.architecture") or ""
    given = []
    for part in ("key_length", "value_length"):
        value = model_meta(model, f"{arch}.attention.{part}")
        given.append(int(value) if value and value.isdecimal() else 0)
    embedding, heads = int(lc.llama_model_n_embd(model)), int(lc.llama_model_n_head(model))
    return head_sizes_from(embedding, heads, given[0], given[1])


def _engine_info(
    lc: Any, model: Any, num_ctx: int, kv_bytes: int, images: ImageReader | None, gpu_bytes: int
) -> Any:
    from power_core.engine import EngineInfo

    vocab = lc.llama_model_get_vocab(model)
    fim = (
        lc.llama_vocab_fim_pre(vocab),
        lc.llama_vocab_fim_suf(vocab),
        lc.llama_vocab_fim_mid(vocab),
    )
    size = int(lc.llama_model_size(model)) + kv_bytes
    return EngineInfo(
        context_length=num_ctx,
        embedding_length=int(lc.llama_model_n_embd_out(model)),  # a vector's floats
        vocab_size=int(lc.llama_vocab_n_tokens(vocab)),
        size_bytes=size,
        gpu_bytes=min(gpu_bytes, size),
        supports_fim=min(fim) >= 0,
        reads_images=images is not None,
        image_tokens=images.image_tokens if images is not None else 0,
    )


def _kv_cache_bytes(
    lc: Any, model: Any, cells: int, head_sizes: tuple[int, int], cache_type: str
) -> int:
    """Estimated size of a KV cache of ``cells`` cells (keys and values for each)."""
    per_cell = int(lc.llama_model_n_head_kv(model)) * sum(head_sizes)
    elements = per_cell * int(lc.llama_model_n_layer(model)) * cells
    return int(elements * KV_BYTES_PER_ELEMENT[cache_type])

"""Load options that llama.cpp cannot honour, refused before it tries.

A request may set ``num_ctx``, ``num_batch`` and ``num_thread`` (Ollama's options), and the
model is loaded with them. Values far out of range do not fail cleanly in llama.cpp: 100,000
threads crash the process (a segmentation fault, measured), ``num_ctx`` times the sequences
is a 32-bit count that wraps, and a context whose KV cache cannot fit in memory spent 52 s
before llama.cpp gave up with ``std::bad_alloc`` (a billion cells of SmolLM2-135M). Each is a
client's mistake, answered with a 400 that says what fits.
"""

from __future__ import annotations

import os

from power_core.errors import InvalidRequest
from power_core.types import LoadOptions

#: ggml's GGML_MAX_N_THREADS: the most threads its thread pools are made for
MAX_THREADS = 512
#: llama.cpp counts the context's cells (num_ctx x num_parallel) in a 32-bit integer
MAX_CELLS = 2**32 - 1


def check_options(options: LoadOptions) -> None:
    """Refuse counts, thread numbers and context sizes llama.cpp cannot take
    (InvalidRequest)."""
    for field in ("num_ctx", "num_batch", "num_parallel"):
        if getattr(options, field) < 1:
            raise InvalidRequest(f"{field} must be at least 1", param=field)
    if options.num_thread is not None and options.num_thread < 1:
        raise InvalidRequest("num_thread must be at least 1", param="num_thread")
    if options.main_gpu is not None and options.main_gpu < 0:
        raise InvalidRequest("main_gpu must not be negative", param="main_gpu")
    if options.max_queue < 0:
        raise InvalidRequest("max_queue must not be negative", param="max_queue")
    if options.num_thread is not None and options.num_thread > MAX_THREADS:
        raise InvalidRequest(
            f"num_thread must be at most {MAX_THREADS} (got {options.num_thread})",
            param="num_thread",
        )
    cells = options.num_ctx * options.num_parallel
    if cells > MAX_CELLS:
        raise InvalidRequest(
            f"num_ctx x num_parallel must be at most {MAX_CELLS} "
            f"(got {options.num_ctx} x {options.num_parallel})",
            param="num_ctx",
        )


def check_kv_cache_fits(options: LoadOptions, kv_bytes: int) -> None:
    """Refuse a context whose KV cache alone needs more memory than the machine has free."""
    available = available_memory()
    if available is None or kv_bytes <= available:
        return
    raise InvalidRequest(
        f"num_ctx={options.num_ctx} for {options.num_parallel} parallel sequences needs "
        f"{_gib(kv_bytes)} of KV cache, more than the {_gib(available)} of memory available; "
        "ask for a smaller num_ctx",
        param="num_ctx",
    )


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux's MemAvailable, else the free
    physical pages); None where the platform does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _gib(size: int) -> str:
    return f"{size / 2**30:,.1f} GiB"

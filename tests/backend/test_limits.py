"""Load options llama.cpp cannot honour are refused before it tries (no model needed; the
same over HTTP on the real model: tests/api_ollama/test_wire.py)."""

from __future__ import annotations

import pytest

from power_backend_llamacpp.limits import (
    MAX_CELLS,
    MAX_THREADS,
    available_memory,
    check_kv_cache_fits,
    check_options,
)
from power_core.errors import InvalidRequest
from power_core.types import LoadOptions


def test_threads_up_to_ggmls_limit() -> None:
    check_options(LoadOptions(num_thread=MAX_THREADS))
    check_options(LoadOptions(num_thread=None))
    with pytest.raises(InvalidRequest, match="num_thread must be at most 512") as caught:
        check_options(LoadOptions(num_thread=MAX_THREADS + 1))
    assert caught.value.param == "num_thread"


def test_cells_must_fit_llama_cpps_count() -> None:
    check_options(LoadOptions(num_ctx=MAX_CELLS // 4, num_parallel=4))
    with pytest.raises(InvalidRequest, match=r"num_ctx x num_parallel must be at most"):
        check_options(LoadOptions(num_ctx=MAX_CELLS // 4 + 1, num_parallel=4))


def test_a_kv_cache_larger_than_the_free_memory_is_refused() -> None:
    free = available_memory()
    assert free is not None and free > 0  # Linux says, in /proc/meminfo
    check_kv_cache_fits(LoadOptions(), free // 2)
    with pytest.raises(InvalidRequest, match=r"GiB of KV cache, more than the .* GiB") as caught:
        check_kv_cache_fits(LoadOptions(num_ctx=10**9), free * 2)
    assert caught.value.param == "num_ctx"
    assert "num_ctx=1000000000 for 4 parallel sequences" in caught.value.message

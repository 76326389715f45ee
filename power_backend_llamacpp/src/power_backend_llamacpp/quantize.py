"""Quantizing a GGUF file with llama.cpp's ``llama_model_quantize`` (the backend's optional
``quantize``, which ``create --quantize`` uses).

llama.cpp reports no progress but its log: ``[  42/ 272] blk.3.attn_k.weight - ...`` as
it starts each tensor, the lines Ollama reads from ``llama-quantize``'s output. The log is
the process's, so one quantizing runs at a time; a second waits for the first.
"""

from __future__ import annotations

import ctypes
import re

from power_backend_llamacpp.backend import listening_to_llama_log
from power_core.concurrency import allocate_native_lock, unpatched
from power_core.engine import QuantizeSpec
from power_core.errors import InvalidRequest, QuantizeFailed

#: ``QuantizeSpec.file_type`` -> llama.cpp's ``llama_ftype`` constant
LLAMA_FTYPES = {
    "F32": "LLAMA_FTYPE_ALL_F32",
    "F16": "LLAMA_FTYPE_MOSTLY_F16",
    "BF16": "LLAMA_FTYPE_MOSTLY_BF16",
    "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "Q4_K_S": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
}

_TENSOR_LINE = re.compile(rb"\[\s*(\d+)/\s*(\d+)\]")
#: llama.cpp's ``GGML_LOG_LEVEL_ERROR``
_LOG_LEVEL_ERROR = 4
_one_at_a_time = allocate_native_lock()


def quantize_gguf(spec: QuantizeSpec, threads: int) -> None:
    """Write ``spec.source`` quantized to ``spec.file_type`` at ``spec.destination`` with
    ``threads`` threads, reporting each tensor started to ``spec.progress``."""
    name = LLAMA_FTYPES.get(spec.file_type)
    if name is None:
        raise InvalidRequest(
            f"llama.cpp cannot quantize to {spec.file_type} here: one of "
            + ", ".join(LLAMA_FTYPES),
            param="quantize",
        )
    import llama_cpp as lc

    errors: list[str] = []
    tensors = [0]
    get_ident = unpatched("_thread", "get_ident")
    quantizing_thread = get_ident()

    def listen(level: int, text: bytes) -> None:
        # the log is the process's: only this thread's lines are the quantizing's (another
        # engine's failure meanwhile is not its reason); progress only queues a report
        if get_ident() != quantizing_thread:
            return
        match = _TENSOR_LINE.match(text)
        if match is not None:
            tensors[0] = int(match[2])
            spec.progress(int(match[1]) - 1, tensors[0])
        elif level == _LOG_LEVEL_ERROR:
            errors.append(text.decode("utf-8", errors="replace").strip())

    params = lc.llama_model_quantize_default_params()
    params.ftype = getattr(lc, name)
    params.nthread = threads
    with _one_at_a_time, listening_to_llama_log(listen):
        status = lc.llama_model_quantize(
            str(spec.source).encode(), str(spec.destination).encode(), ctypes.byref(params)
        )
    if status != 0:
        reason = "; ".join(errors) or f"llama_model_quantize returned {status}"
        raise QuantizeFailed(
            f"llama.cpp could not quantize {spec.source.name} to {spec.file_type}: {reason}"
        )
    if tensors[0]:
        spec.progress(tensors[0], tensors[0])

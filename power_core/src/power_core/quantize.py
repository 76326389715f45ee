"""Quantizing a model's weights while creating it (Ollama's ``create --quantize``).

The core owns the rules, as Ollama's ``server/create.go`` states them: which types may be
asked for, that only F32, F16 and BF16 weights are quantized, the progress reports, and
checking the result. The quantizing itself is a backend's optional ``quantize`` method
(:class:`~power_core.engine.Quantizer`), run here on a native thread so that the server's
other requests keep flowing meanwhile.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from power_core.concurrency import EventChannel, start_native_thread
from power_core.engine import Backend, Quantizer, QuantizeSpec
from power_core.errors import (
    BackendUnavailable,
    InsufficientStorage,
    InvalidRequest,
    QuantizeFailed,
)
from power_core.gguf import GGUFInfo, read_gguf_info
from power_core.sources import ProgressCallback, PullProgress

#: the types ``quantize`` takes, in any case, as Ollama's ``ParseFileType`` takes them
QUANTIZE_TYPES = ("F32", "F16", "BF16", "Q4_K_S", "Q4_K_M", "Q8_0")
#: other spellings Ollama takes for them
_ALIASES = {"Q4_K": "Q4_K_M"}
#: the weights that can be quantized (Ollama's list, in its words below)
QUANTIZABLE = ("F32", "F16", "BF16")
#: free space under which a failed quantizing is taken for a full disk
_NEARLY_FULL = 16 << 20
#: Ollama sends this placeholder as the digest of its quantizing reports
PROGRESS_DIGEST = "0000000000000000000"


def parse_quantize_type(value: str) -> str:
    """The quantization type ``value`` names (``"q4_k_m"`` is ``"Q4_K_M"``); raises
    :class:`InvalidRequest` naming the accepted types, in Ollama's words, otherwise."""
    name = value.strip().upper()
    name = _ALIASES.get(name, name)
    if name not in QUANTIZE_TYPES:
        raise InvalidRequest(
            f"unsupported quantization type {name or repr(value)} - supported types are "
            + ", ".join(QUANTIZE_TYPES),
            param="quantize",
        )
    return name


def check_quantizable(info: GGUFInfo) -> None:
    """:class:`InvalidRequest` (Ollama's words) unless the weights are F32, F16 or BF16."""
    if info.quantization not in QUANTIZABLE:
        raise InvalidRequest(
            "quantization is only supported for F16, BF16 and F32 models "
            f"(these weights are {info.quantization})",
            param="quantize",
        )


def find_quantizer(backends: Iterable[Backend], model_format: str) -> Quantizer:
    """The first backend that can quantize ``model_format`` files; raises
    :class:`BackendUnavailable` when none can."""
    for backend in backends:
        if isinstance(backend, Quantizer) and backend.supports(model_format):
            return backend
    raise BackendUnavailable(
        f"no backend can quantize {model_format} models: install one that can, such as "
        "a3s-power-llamacpp",
        param="quantize",
    )


class QuantizeJob(NamedTuple):
    """A create's quantizing: the backend, the weights' file and header, the type."""

    quantizer: Quantizer
    source: Path
    info: GGUFInfo
    file_type: str


def plan_quantizing(
    source: Path, info: GGUFInfo, file_type: str, backends: Iterable[Backend]
) -> QuantizeJob | None:
    """The quantizing of weights ``source`` (header ``info``) to ``file_type``, or ``None``
    when they are of that type already (Ollama then keeps them). Refuses weights that are
    quantized already and, when there is work to do, backends of which none can do it."""
    check_quantizable(info)
    if info.quantization == file_type:
        return None
    return QuantizeJob(find_quantizer(backends, "gguf"), source, info, file_type)


def quantize_weights(job: QuantizeJob, destination: Path, progress: ProgressCallback) -> GGUFInfo:
    """Run ``job`` on a native thread, writing ``destination``, reporting ``quantizing F16
    model to Q4_K_M`` with bytes of the source as Ollama does, then ``verifying
    conversion``; returns the new file's header.

    Raises what the backend raised, and :class:`QuantizeFailed` when it wrote no GGUF of
    the type asked for. The caller owns ``destination`` and removes it.
    """
    quantizer, source, file_type = job.quantizer, job.source, job.file_type
    status = f"quantizing {job.info.quantization} model to {file_type}"
    total = os.stat(source).st_size
    # made here, on the side that reads it: its waker belongs to this thread's hub
    reports: EventChannel[tuple[int, int]] = EventChannel()

    def work() -> None:
        spec = QuantizeSpec(
            source=source,
            destination=destination,
            file_type=file_type,
            progress=lambda done, count: reports.put((done, count)),
        )
        try:
            quantizer.quantize(spec)
        except BaseException as exc:  # re-raised on the waiting side
            reports.close(exc)
        else:
            reports.close()

    progress(PullProgress(status, digest=PROGRESS_DIGEST, total=total, completed=0))
    start_native_thread(work, "a3s-power-quantize")
    reported = 0
    try:
        for done, count in reports:
            completed = total * min(done, count) // count if count > 0 else 0
            if completed != reported:
                reported = completed
                progress(
                    PullProgress(status, digest=PROGRESS_DIGEST, total=total, completed=completed)
                )
    except QuantizeFailed as exc:
        # llama.cpp says "iostream error" when the disk fills: say what happened
        if shutil.disk_usage(destination.parent).free < _NEARLY_FULL:
            raise InsufficientStorage(
                f"not enough disk space in {destination.parent} to quantize the model"
            ) from exc
        raise
    progress(PullProgress("verifying conversion"))
    try:
        info = read_gguf_info(destination)
    except InvalidRequest as exc:
        raise QuantizeFailed(f"{quantizer.name} wrote no valid GGUF file: {exc.message}") from exc
    if info.quantization != file_type:
        raise QuantizeFailed(
            f"{quantizer.name} was asked for {file_type} weights and wrote {info.quantization}"
        )
    return info

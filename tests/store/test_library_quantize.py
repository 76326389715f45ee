"""What the library itself decides when a create quantizes: refusals before any report,
weights kept when already of the type, a backend's failure cleaned up. The quantizing by
llama.cpp is tested end to end in tests/api_ollama/test_quantize.py."""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from power_core.engine import QuantizeSpec
from power_core.errors import (
    BackendUnavailable,
    InsufficientStorage,
    InvalidRequest,
    PowerError,
    QuantizeFailed,
)
from power_core.library import ModelLibrary
from power_core.sources import PullProgress
from power_core.store.local import LocalStore


class _ScriptedQuantizer:
    """A backend whose ``quantize`` writes what a test gives it: the library's handling of
    the result is under test here, not the quantizing."""

    name = "scripted"

    def __init__(self, write: Callable[[QuantizeSpec], None]) -> None:
        self._write = write
        self.specs: list[QuantizeSpec] = []

    def supports(self, model_format: str) -> bool:
        return model_format == "gguf"

    def load(self, spec: object) -> object:
        raise AssertionError("not loaded in these tests")

    def quantize(self, spec: QuantizeSpec) -> None:
        self.specs.append(spec)
        self._write(spec)


class _InferenceOnly:
    name = "inference-only"

    def supports(self, model_format: str) -> bool:
        return True

    def load(self, spec: object) -> object:
        raise AssertionError("not loaded in these tests")


def _library(store: LocalStore, *backends: object) -> ModelLibrary:
    return ModelLibrary(store, backends=lambda: list(backends))  # type: ignore[arg-type]


def _upload(library: ModelLibrary, path: Path) -> str:
    data = path.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    library.put_blob_stream([data], digest, len(data))
    return digest


def _files(store: LocalStore) -> set[str]:
    return {str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file()}


def test_refusals_come_before_any_report_and_leave_nothing(
    store: LocalStore, make_gguf: Callable[..., Path], tmp_path: Path
) -> None:
    f16 = make_gguf("f16.gguf", file_type=1)
    q4 = make_gguf("q4.gguf", file_type=3)
    library = _library(store, _InferenceOnly())
    library.create_from_modelfile("base", f"FROM {q4}", tmp_path)
    f16_digest, q4_digest = _upload(library, f16), _upload(library, q4)
    before = _files(store)
    events: list[PullProgress] = []
    attempts: list[tuple[type[Exception], str, Callable[[], object]]] = [
        (
            InvalidRequest,
            "unsupported quantization type Q5_K_M - supported types are F32, F16, BF16, "
            "Q4_K_S, Q4_K_M, Q8_0",
            lambda: library.create("m", files={"f.gguf": f16_digest}, quantize="q5_k_m"),
        ),
        (
            InvalidRequest,
            "quantization is only supported for F16, BF16 and F32 models (these weights are Q4_1)",
            lambda: library.create("m", files={"f.gguf": q4_digest}, quantize="q8_0"),
        ),
        (
            InvalidRequest,
            "quantization is only supported for F16, BF16 and F32 models",
            lambda: library.create("m", from_="base", quantize="Q4_K_M", progress=events.append),
        ),
        (
            BackendUnavailable,
            "no backend can quantize gguf models",
            lambda: library.create(
                "m", files={"f.gguf": f16_digest}, quantize="q4_k", progress=events.append
            ),
        ),
        (
            BackendUnavailable,
            "no backend can quantize gguf models",
            lambda: library.create_from_modelfile("m", f"FROM {f16}", tmp_path, quantize="q8_0"),
        ),
    ]
    for error, message, attempt in attempts:
        with pytest.raises(error) as caught:
            attempt()
        assert message in caught.value.message
        assert caught.value.param == "quantize"
    assert events == []
    assert _files(store) == before
    assert not library.exists("m")


def test_weights_of_the_type_asked_for_are_kept_as_they_are(
    store: LocalStore, make_gguf: Callable[..., Path]
) -> None:
    library = _library(store)  # no backend at all: none is asked
    digest = _upload(library, make_gguf("f16.gguf", file_type=1))
    library.create("m", files={"f.gguf": digest}, quantize="f16")
    assert library.resolve("m").model_digest == digest


def test_a_failed_quantizing_leaves_no_file_behind(
    store: LocalStore, make_gguf: Callable[..., Path]
) -> None:
    def half_then_fail(spec: QuantizeSpec) -> None:
        spec.destination.write_bytes(b"GGUF" + bytes(1000))
        spec.progress(1, 2)
        raise QuantizeFailed("llama.cpp could not quantize f16.gguf to Q8_0: disk on fire")

    quantizer = _ScriptedQuantizer(half_then_fail)
    library = _library(store, _InferenceOnly(), quantizer)
    digest = _upload(library, make_gguf("f16.gguf", file_type=1))
    before = _files(store)
    events: list[PullProgress] = []
    with pytest.raises(QuantizeFailed, match="disk on fire"):
        library.create("m", files={"f.gguf": digest}, quantize="q8_0", progress=events.append)
    [spec] = quantizer.specs
    assert spec.file_type == "Q8_0" and spec.source == store.blob_path(digest)
    assert spec.destination.parent == store.tmp_dir and not spec.destination.exists()
    assert [e.completed for e in events] == [0, events[0].total // 2]  # type: ignore[operator]
    assert {e.status for e in events} == {"quantizing F16 model to Q8_0"}
    assert _files(store) == before
    assert not library.exists("m")


def test_weights_not_of_the_type_asked_for_are_not_stored(
    store: LocalStore, make_gguf: Callable[..., Path]
) -> None:
    unchanged = make_gguf("f16.gguf", file_type=1)

    def copy(spec: QuantizeSpec) -> None:
        spec.destination.write_bytes(unchanged.read_bytes())

    library = _library(store, _ScriptedQuantizer(copy))
    digest = _upload(library, unchanged)
    before = _files(store)
    with pytest.raises(QuantizeFailed, match="asked for Q4_K_M weights and wrote F16"):
        library.create("m", files={"f.gguf": digest}, quantize="q4_K_M")
    assert _files(store) == before


def test_closing_removes_the_file_of_a_quantizing_under_way(
    store: LocalStore, make_gguf: Callable[..., Path]
) -> None:
    # at shutdown the request is abandoned with the process: its scratch file must not stay
    writing, closed = threading.Event(), threading.Event()

    def write_then_wait(spec: QuantizeSpec) -> None:
        spec.destination.write_bytes(b"GGUF" + bytes(1000))
        writing.set()
        closed.wait(30)

    library = _library(store, _ScriptedQuantizer(write_then_wait))
    digest = _upload(library, make_gguf("f16.gguf", file_type=1))
    failures: list[Exception] = []

    def create() -> None:
        try:
            library.create("m", files={"f.gguf": digest}, quantize="q8_0")
        except PowerError as exc:  # its file gone, the abandoned create cannot finish
            failures.append(exc)

    worker = threading.Thread(target=create, daemon=True)
    worker.start()
    assert writing.wait(30)
    assert [p.name for p in store.tmp_dir.iterdir() if p.name.startswith("quantize-")]
    library.close()
    assert not [p for p in store.tmp_dir.iterdir() if p.name.startswith("quantize-")]
    closed.set()
    worker.join(30)
    assert failures and not library.exists("m")


def test_a_quantizing_that_fills_the_disk_says_so(
    store: LocalStore, make_gguf: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail_as_llama_cpp_does(spec: QuantizeSpec) -> None:
        raise QuantizeFailed("llama_model_quantize: failed to quantize: iostream error")

    library = _library(store, _ScriptedQuantizer(fail_as_llama_cpp_does))
    digest = _upload(library, make_gguf("f16.gguf", file_type=1))
    # the disk as a full one reports it (filling a real one would fill the test machine's)
    full = shutil.disk_usage(store.root)._replace(free=4096)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: full)
    with pytest.raises(InsufficientStorage, match="not enough disk space"):
        library.create("m", files={"f.gguf": digest}, quantize="q8_0")


def test_the_quantized_weights_are_moved_into_the_blobs_not_copied(
    store: LocalStore, make_gguf: Callable[..., Path]
) -> None:
    # a second copy of a model's weights would need their size again in free disk
    quantized = make_gguf("q8.gguf", file_type=7).read_bytes()
    written: list[int] = []

    def write_q8_0(spec: QuantizeSpec) -> None:
        spec.destination.write_bytes(quantized)
        written.append(spec.destination.stat().st_ino)

    library = _library(store, _ScriptedQuantizer(write_q8_0))
    digest = _upload(library, make_gguf("f16.gguf", file_type=1))
    library.create("m", files={"f.gguf": digest}, quantize="q8_0")
    model = library.resolve("m")
    assert model.model_digest == "sha256:" + hashlib.sha256(quantized).hexdigest()
    assert store.blob_path(model.model_digest).stat().st_ino == written[0]
    assert not list(store.tmp_dir.iterdir())

"""The llama.cpp backend's image reading, in-process on the real SmolLM2 with tiny random
projectors (``tiny_projector``): an image cut into slices keeps one id over all its chunks;
a projector the model cannot use leaves the model reading text; closing the engine while
an image is tokenized crashes nothing; an image too large is refused from its header
alone; WebP is converted, and reads as the same pixels in PNG do."""

from __future__ import annotations

import io
import logging
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from power_backend_llamacpp.backend import LlamaCppBackend
from power_backend_llamacpp.engine import LlamaCppEngine
from power_backend_llamacpp.images import ImageReader
from power_core.engine import CompletionJob, LoadSpec
from power_core.errors import BackendUnavailable, Cancelled, InvalidRequest
from power_core.types import LoadOptions
from tiny_projector import (
    IMAGE_SIZE,
    N_IMAGE_TOKENS,
    tiny_png,
    write_tiny_projector,
    write_tiny_slicing_projector,
)

from .conftest import GREEDY, text

PROMPT = "<|im_start|>user\n[img-0]What is this?<|im_end|>\n<|im_start|>assistant\n"


def load(model_path: Path, projector: Path) -> LlamaCppEngine:
    spec = LoadSpec(
        name="seeing",
        path=model_path,
        digest="sha256:" + "0" * 64,
        format="gguf",
        options=LoadOptions(num_ctx=512, num_parallel=2, num_thread=1),
        projector=projector,
    )
    engine = LlamaCppBackend().load(spec)
    assert isinstance(engine, LlamaCppEngine)
    return engine


@pytest.fixture(scope="module")
def seeing(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppEngine]:
    engine = load(model_path, write_tiny_projector(tmp_path_factory.mktemp("p") / "p.gguf"))
    yield engine
    engine.close()


def answer(engine: LlamaCppEngine, image: bytes) -> str:
    job = CompletionJob(PROMPT, sampling=GREEDY, max_tokens=8, images=[image])
    return text(list(engine.submit(job)))


def test_an_image_cut_into_slices_keeps_one_id_over_all_its_chunks(
    model_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    projector = write_tiny_slicing_projector(tmp_path / "idefics.gguf")
    engine = load(model_path, write_tiny_projector(tmp_path / "plain.gguf"))
    try:
        # the projector on its own: read through libmtmd with the model's weights
        reader = ImageReader(
            projector, engine._model, n_threads=1, batch_tokens=256, name="slicing"
        )
        try:
            prompt = reader.prompt("Look: [img-0]", [tiny_png(1, 2 * IMAGE_SIZE)], add_bos=False)
            runs = sorted(prompt.runs.items())
            assert len(runs) == 5  # the whole image, then four slices
            ids = {prompt.tokens[start] for start, run in runs for _ in range(run.length)}
            assert len(ids) == 1 and next(iter(ids)) < -(1 << 200)
            assert prompt.lacks_tokens()  # SmolVLM's <global-img> is no SmolLM2 token
            assert reader.problem is not None
            prompt.free()
        finally:
            reader.close()
    finally:
        engine.close()
    # loaded with the model, it leaves the model reading text only
    with caplog.at_level(logging.WARNING):
        sliced = load(model_path, projector)
    try:
        assert not sliced.info.reads_images
        assert "tokens this model's vocabulary lacks" in caplog.text
        assert text(list(sliced.submit(CompletionJob("Hi", sampling=GREEDY, max_tokens=3))))
    finally:
        sliced.close()


def test_a_projector_for_another_width_leaves_the_model_reading_text(
    model_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wide = write_tiny_projector(tmp_path / "wide.gguf", text_embedding_length=640)
    with caplog.at_level(logging.WARNING):
        engine = load(model_path, wide)
    try:
        assert not engine.info.reads_images and engine.info.image_tokens == 0
        assert "loads without reading images" in caplog.text
        assert text(list(engine.submit(CompletionJob("Hi", sampling=GREEDY, max_tokens=3))))
    finally:
        engine.close()


def test_closing_while_an_image_is_tokenized_crashes_nothing(
    model_path: Path, tmp_path: Path
) -> None:
    engine = load(model_path, write_tiny_projector(tmp_path / "p.gguf"))
    large = tiny_png(3, 2500)
    outcome: list[BaseException | None] = []

    def submit() -> None:
        try:
            list(
                engine.submit(CompletionJob(PROMPT, sampling=GREEDY, max_tokens=2, images=[large]))
            )
            outcome.append(None)
        except (BackendUnavailable, Cancelled) as exc:
            outcome.append(exc)

    worker = threading.Thread(target=submit)
    worker.start()
    time.sleep(0.02)
    engine.close()  # the projector is freed once its tokenizing ends, not under it
    worker.join(timeout=60)
    assert len(outcome) == 1


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` grey pixels and holds a few."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_an_image_too_large_is_refused_from_its_header(seeing: LlamaCppEngine) -> None:
    # the files hold a few pixels: what names their size read it from the header
    with pytest.raises(InvalidRequest, match="has 8000 x 8000 pixels; at most 40 million"):
        answer(seeing, png_header(8000, 8000))
    with pytest.raises(InvalidRequest, match="has more than 178 million pixels"):
        answer(seeing, png_header(20000, 20000))
    with pytest.raises(InvalidRequest, match="image 0 could not be read"):
        answer(seeing, b"RIFF\x00\x00\x00\x00WAVEfmt ")


def test_webp_reads_as_the_same_pixels_in_png_do(seeing: LlamaCppEngine) -> None:
    png = tiny_png(5)
    webp = io.BytesIO()
    Image.open(io.BytesIO(png)).save(webp, "WEBP", lossless=True)
    assert answer(seeing, webp.getvalue()) == answer(seeing, png)
    assert answer(seeing, png) != answer(seeing, tiny_png(6))
    assert seeing.info.image_tokens == N_IMAGE_TOKENS

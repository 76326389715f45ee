"""Images in prompts, read through llama.cpp's multimodal library (libmtmd) with the
model's projector (an mmproj GGUF).

A prompt's image tags (``[img-0]``, :data:`power_core.engine.IMAGE_TAG`) become libmtmd's
media marker; each image, decoded by Pillow (:mod:`power_backend_llamacpp.image_files`),
goes to libmtmd as pixels, and libmtmd tokenizes the text around the markers and turns each
image into chunks of embeddings to come (one, or several for a projector that cuts images
into slices, with the model's own image start and end tokens around them). In the job's
token list an image takes as many positions as it has embeddings, each holding the same
negative id drawn from the file's SHA-256: the prompt cache then matches an image only with
itself, and the samplers and returned contexts leave those ids out. The engine thread
encodes an image and decodes its embeddings into the sequence when the prompt's reading
reaches it, alone in that decode (:meth:`ImageReader.read`).
"""

from __future__ import annotations

import bisect
import ctypes
import hashlib
import itertools
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from power_backend_llamacpp.image_files import Pixels, decoded_image
from power_backend_llamacpp.model_checks import projector_problem
from power_core.chat.images import split_at_tags
from power_core.concurrency import allocate_native_lock
from power_core.errors import BackendUnavailable, InvalidModelFile, ModelLoadFailed, PowerError

#: the photo whose token count stands for every image's when a conversation is fitted to
#: the context (most projectors give every image the same count)
PHOTO_SIZE = (1024, 768)


@dataclass(frozen=True)
class ImageRun:
    """One image of a prompt: its chunk and how many positions it takes."""

    chunk: Any
    length: int


class ImagePrompt:
    """A tokenized prompt with images: its token list (images as runs of one negative id)
    and, by the position each starts at, its images. Owns libmtmd's chunks until
    :meth:`free`."""

    def __init__(self, chunks: Any, tokens: list[int], runs: dict[int, ImageRun]) -> None:
        self._chunks = chunks
        self.tokens = tokens
        self.runs = runs
        self._starts = sorted(runs)

    def next_start(self, position: int) -> int:
        """Where the first image at or after ``position`` starts (the prompt's length when
        none does)."""
        index = bisect.bisect_left(self._starts, position)
        return self._starts[index] if index < len(self._starts) else len(self.tokens)

    def boundary(self, position: int) -> int:
        """``position``, or the start of the image it falls inside: a prompt cache may hold
        a whole image or none of it."""
        index = bisect.bisect_right(self._starts, position) - 1
        if index >= 0:
            start = self._starts[index]
            if start < position < start + self.runs[start].length:
                return start
        return position

    def lacks_tokens(self) -> bool:
        """Whether the text libmtmd put around an image holds tokens the model's
        vocabulary lacks (a projector made for another model's image tokens)."""
        images = {i for start, run in self.runs.items() for i in range(start, start + run.length)}
        return any(token < 0 for i, token in enumerate(self.tokens) if i not in images)

    def free(self) -> None:
        if self._chunks is not None:
            _mtmd().mtmd_input_chunks_free(self._chunks)
            self._chunks = None


def text_tokens(tokens: list[int]) -> list[int]:
    """``tokens`` without the images' positions (for samplers and returned contexts)."""
    return [token for token in tokens if token >= 0]


class ImageReader:
    """A model's projector, loaded beside the model; :meth:`prompt` runs on any thread
    (one at a time, and never once :meth:`close` began), :meth:`read` on the engine thread
    only."""

    def __init__(
        self, projector: Path, model: Any, *, n_threads: int, batch_tokens: int, name: str
    ) -> None:
        try:
            problem = projector_problem(projector)
        except InvalidModelFile as exc:  # not even a header to read: the model reads text
            raise ModelLoadFailed(f"cannot use the projector of '{name}': {exc.message}") from None
        if problem is not None:  # refused here: llama.cpp would abort the process
            raise ModelLoadFailed(f"cannot use the projector of '{name}': {problem}")
        mtmd = _mtmd()
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = False
        params.print_timings = False
        params.n_threads = n_threads
        # a marker no prompt holds by chance: text is never read as an image
        self._marker = f"<__a3s_image_{secrets.token_hex(8)}__>"
        self._marker_bytes = self._marker.encode()  # libmtmd keeps the pointer
        params.media_marker = self._marker_bytes
        ctx = mtmd.mtmd_init_from_file(str(projector).encode(), model, params)
        if not ctx:
            raise ModelLoadFailed(
                f"llama.cpp could not load the projector of '{name}' ({projector}): not an "
                "mmproj GGUF, one this llama.cpp cannot read, or made for another model "
                "(its output width must be the model's embedding width)"
            )
        problem = None
        if not mtmd.mtmd_support_vision(ctx):
            problem = "it reads no images"
        elif mtmd.mtmd_decode_use_mrope(ctx):
            problem = "its model places images with M-RoPE positions, not supported here yet"
        if problem:
            mtmd.mtmd_free(ctx)
            raise ModelLoadFailed(f"cannot use the projector of '{name}': {problem}")
        self._ctx = ctx
        self._lock = allocate_native_lock()
        try:
            photo = self._photo()
        except PowerError as exc:
            self.close()
            raise ModelLoadFailed(f"cannot use the projector of '{name}': {exc.message}") from None
        #: the prompt tokens a photo takes (:data:`PHOTO_SIZE`)
        self.image_tokens = len(photo.tokens)
        #: why the model cannot read images with it, when it cannot
        self.problem = (
            "it frames images with tokens this model's vocabulary lacks (made for another model)"
            if photo.lacks_tokens()
            else None
        )
        photo.free()
        if mtmd.mtmd_decode_use_non_causal(ctx, None) and self.image_tokens > batch_tokens:
            # an image attends to itself whole: split over several decodes it would not
            self.close()
            raise ModelLoadFailed(
                f"the projector of '{name}' reads an image of {self.image_tokens} tokens in "
                f"one batch; load with num_batch {self.image_tokens} or more"
            )

    def _photo(self) -> ImagePrompt:
        """A black photo (:data:`PHOTO_SIZE`) tokenized alone."""
        width, height = PHOTO_SIZE
        black = Pixels(width, height, bytes(width * height * 3))
        return self._prompt(self._marker, [(black, "photo")], add_bos=False)

    def prompt(self, text: str, images: list[bytes], *, add_bos: bool) -> ImagePrompt:
        """Tokenize ``text``, reading the images its tags name (other tags stay text)."""
        parts, shown = split_at_tags(text, len(images))
        # decoded outside the lock: a photo takes a while, and close() waits for the lock
        decoded = {index: decoded_image(images[index], index) for index in set(shown)}
        names = {index: hashlib.sha256(images[index]).hexdigest() for index in set(shown)}
        pictures = [(decoded[index], names[index]) for index in shown]
        with self._lock:  # close() waits for it, and frees nothing under it
            if self._ctx is None:
                raise BackendUnavailable("the model was unloaded")
            return self._prompt(self._marker.join(parts), pictures, add_bos)

    def _prompt(self, text: str, pictures: list[tuple[Pixels, str]], add_bos: bool) -> ImagePrompt:
        mtmd = _mtmd()
        bitmaps: list[Any] = []
        try:
            for pixels, name in pictures:
                bitmaps.append(_bitmap(mtmd, pixels, name))
            chunks = self._tokenized(text, bitmaps, add_bos=add_bos)
        finally:
            for bitmap in bitmaps:
                mtmd.mtmd_bitmap_free(bitmap)
        try:
            return _laid_out(mtmd, chunks)
        except BaseException:
            mtmd.mtmd_input_chunks_free(chunks)
            raise

    def _tokenized(self, text: str, bitmaps: list[Any], *, add_bos: bool) -> Any:
        """libmtmd's chunks of ``text`` whose markers show ``bitmaps`` (the caller frees
        them)."""
        mtmd = _mtmd()
        chunks = mtmd.mtmd_input_chunks_init()
        marked = text.encode()
        source = mtmd.mtmd_input_text(marked, len(marked), add_bos, True)
        array = (mtmd.mtmd_bitmap_p_ctypes * max(len(bitmaps), 1))(*bitmaps)
        status = mtmd.mtmd_tokenize(self._ctx, chunks, ctypes.byref(source), array, len(bitmaps))
        if status != 0:
            mtmd.mtmd_input_chunks_free(chunks)
            raise PowerError(f"llama.cpp could not tokenize a prompt with images ({status})")
        return chunks

    def read(self, lctx: Any, run: ImageRun, position: int, seq_id: int, n_batch: int) -> None:
        """Encode ``run``'s image and decode its embeddings into sequence ``seq_id`` from
        ``position`` (engine thread)."""
        mtmd = _mtmd()
        import llama_cpp as lc

        new_position = lc.llama_pos(0)
        status = mtmd.mtmd_helper_eval_chunk_single(
            self._ctx, lctx, run.chunk, position, seq_id, n_batch, False, ctypes.byref(new_position)
        )
        if status != 0:
            raise PowerError(f"llama.cpp could not read an image of the prompt ({status})")
        if new_position.value != position + run.length:  # refused at load (M-RoPE)
            raise PowerError("an image took other positions than its tokens")

    def close(self) -> None:
        """Free the projector once no prompt is being tokenized with it."""
        with self._lock:
            if self._ctx is not None:
                _mtmd().mtmd_free(self._ctx)
                self._ctx = None


def _bitmap(mtmd: Any, pixels: Pixels, name: str) -> Any:
    """libmtmd's bitmap of decoded ``pixels``, named by the file's digest (its chunks'
    ids, so the prompt cache knows the image again)."""
    buffer = (ctypes.c_uint8 * len(pixels.rgb)).from_buffer_copy(pixels.rgb)
    bitmap = mtmd.mtmd_bitmap_init(pixels.width, pixels.height, buffer)
    if not bitmap:
        raise PowerError("llama.cpp could not take an image's pixels")
    mtmd.mtmd_bitmap_set_id(bitmap, name.encode())
    return bitmap


def _laid_out(mtmd: Any, chunks: Any) -> ImagePrompt:
    """The token list of tokenized ``chunks``: an image's chunks (several for a projector
    that cuts images into slices) hold ids from the image's digest, which libmtmd names."""
    tokens: list[int] = []
    runs: dict[int, ImageRun] = {}
    for index in range(mtmd.mtmd_input_chunks_size(chunks)):
        chunk = mtmd.mtmd_input_chunks_get(chunks, index)
        kind = mtmd.mtmd_input_chunk_get_type(chunk)
        if kind == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
            count = ctypes.c_size_t(0)
            pointer = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
            tokens.extend(pointer[i] for i in range(count.value))
            continue
        if kind != mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE:
            raise PowerError("the projector turned an image into audio")
        length = int(mtmd.mtmd_input_chunk_get_n_tokens(chunk))
        runs[len(tokens)] = ImageRun(chunk, length)
        tokens.extend([_image_id(mtmd.mtmd_input_chunk_get_id(chunk))] * length)
    return ImagePrompt(chunks, tokens, runs)


#: ids for images libmtmd names no digest of: each its own, matching no cache
_unnamed = itertools.count(1)


def _image_id(name: bytes | None) -> int:
    """The negative id an image's positions hold: from its whole SHA-256 (as libmtmd
    names it; so two images never share one), never a vocabulary id, and never passed to
    llama.cpp."""
    if not name:
        return -(1 << 300) - next(_unnamed)
    return -1 - int.from_bytes(hashlib.sha256(name).digest(), "big")


def _mtmd() -> Any:
    from llama_cpp import mtmd_cpp

    return mtmd_cpp

"""A bounded reader of GGUF headers (versions 2 and 3), using only the standard library.

Every model file is checked here before it is stored or shown. The reader walks the
header through a small sliding buffer, never the whole file, and checks every count and
length against what the rest of the file could possibly hold (and against hard caps)
before allocating anything, so a hostile or truncated file fails in milliseconds with
:class:`~power_core.errors.InvalidModelFile` instead of exhausting memory. Large arrays
(tokenizer vocabularies) are skipped and only their lengths kept, unless asked for.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from power_core.errors import InvalidModelFile

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

#: arrays with more elements than this are recorded by length only (unless asked)
LARGE_ARRAY_THRESHOLD = 256
MAX_KV_COUNT = 1 << 20
MAX_TENSOR_COUNT = 1 << 20
MAX_STRING_LENGTH = 64 << 20
MAX_ARRAY_LENGTH = 1 << 26
MAX_TENSOR_DIMS = 4  # GGML_MAX_DIMS
MAX_NESTING = 4

_BUFFER = 1 << 20
_U64 = struct.Struct("<Q")

# value types: id -> (struct format, size)
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("B", 1),  # uint8
    1: ("b", 1),  # int8
    2: ("H", 2),  # uint16
    3: ("h", 2),  # int16
    4: ("I", 4),  # uint32
    5: ("i", 4),  # int32
    6: ("f", 4),  # float32
    7: ("?", 1),  # bool
    10: ("Q", 8),  # uint64
    11: ("q", 8),  # int64
    12: ("d", 8),  # float64
}
_STRING, _ARRAY = 8, 9

# ggml tensor types: name, id, elements per block, bytes per block
_GGML_TYPES = """
F32 0 1 4    F16 1 1 2       Q4_0 2 32 18    Q4_1 3 32 20    Q5_0 6 32 22    Q5_1 7 32 24
Q8_0 8 32 34 Q8_1 9 32 36    Q2_K 10 256 84  Q3_K 11 256 110 Q4_K 12 256 144 Q5_K 13 256 176
Q6_K 14 256 210  Q8_K 15 256 292  IQ2_XXS 16 256 66  IQ2_XS 17 256 74  IQ3_XXS 18 256 98
IQ1_S 19 256 50  IQ4_NL 20 32 18  IQ3_S 21 256 110  IQ2_S 22 256 82  IQ4_XS 23 256 136
I8 24 1 1  I16 25 1 2  I32 26 1 4  I64 27 1 8  F64 28 1 8  IQ1_M 29 256 56  BF16 30 1 2
TQ1_0 34 256 54  TQ2_0 35 256 66  MXFP4 39 32 17  NVFP4 40 64 36  Q1_0 41 128 18
"""
#: ggml tensor type id -> (elements per block, bytes per block)
GGML_TYPE_SIZES: dict[int, tuple[int, int]] = {
    int(type_id): (int(block), int(size))
    for _, type_id, block, size in zip(*[iter(_GGML_TYPES.split())] * 4, strict=True)
}
#: ggml tensor type id -> its name (``Q4_K``), as Ollama shows tensors
GGML_TYPE_NAMES: dict[int, str] = {
    int(type_id): name for name, type_id, _, _ in zip(*[iter(_GGML_TYPES.split())] * 4, strict=True)
}

# general.file_type (llama_ftype) values in order; "-" marks values llama.cpp retired
_FILE_TYPES = """
F32 F16 Q4_0 Q4_1 MXFP4 - - Q8_0 Q5_0 Q5_1 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S
Q5_K_M Q6_K IQ2_XXS IQ2_XS Q2_K_S IQ3_XS IQ3_XXS IQ1_S IQ4_NL IQ3_S IQ3_M IQ2_S IQ2_M IQ4_XS
IQ1_M BF16 - - - TQ1_0 TQ2_0 MXFP4 NVFP4 Q1_0
"""
#: general.file_type -> the quantization level name Ollama shows
FILE_TYPE_NAMES: dict[int, str] = {i: n for i, n in enumerate(_FILE_TYPES.split()) if n != "-"}

#: architectures that only embed (no causal language-model head)
EMBEDDING_ARCHITECTURES = frozenset({"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2"})


@dataclass
class TensorInfo:
    """One tensor's header entry."""

    name: str
    shape: tuple[int, ...]
    type: int
    offset: int
    #: the name's bytes as the file holds them (``name`` replaces what is not UTF-8)
    raw_name: bytes = field(default=b"", compare=False, repr=False)

    @property
    def n_elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count

    @property
    def type_name(self) -> str:
        """The ggml type's name (``Q4_K``, ``F32``)."""
        return GGML_TYPE_NAMES[self.type]

    @property
    def n_bytes(self) -> int:
        """The size of the tensor's data (whole blocks: the reader refuses partial ones)."""
        block, type_size = GGML_TYPE_SIZES[self.type]
        return self.n_elements // block * type_size


@dataclass
class GGUFInfo:
    """What the header of a GGUF file says."""

    version: int
    #: key/value metadata; arrays longer than the threshold are left out unless asked
    metadata: dict[str, Any]
    tensor_count: int
    #: lengths of the arrays left out of :attr:`metadata`
    large_arrays: dict[str, int] = field(default_factory=dict)
    parameter_count: int = 0
    #: byte offset where tensor data starts; the file holds every tensor's data
    data_offset: int = 0
    file_size: int = 0
    tensors: list[TensorInfo] = field(default_factory=list)
    #: where each key/value entry lies in the file: (start, end) byte offsets, in order
    kv_spans: dict[str, tuple[int, int]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def architecture(self) -> str:
        """``general.architecture`` (e.g. ``llama``), or ``""``."""
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else ""

    @property
    def family(self) -> str:
        """The model family Ollama reports: the architecture."""
        return self.architecture

    @property
    def file_type(self) -> int | None:
        value = self.metadata.get("general.file_type")
        return value if isinstance(value, int) else None

    @property
    def quantization(self) -> str:
        """Ollama-style quantization level (``Q4_1``, ``Q4_K_M``, ``F16``) or ``unknown``."""
        file_type = self.file_type
        if file_type is None:
            return "unknown"
        return FILE_TYPE_NAMES.get(file_type, "unknown")

    @property
    def quantization_level(self) -> str:
        """The same as :attr:`quantization` (Ollama's field name)."""
        return self.quantization

    def arch_value(self, key: str) -> Any:
        """``<architecture>.<key>`` from the metadata, or ``None``."""
        return self.metadata.get(f"{self.architecture}.{key}")

    @property
    def context_length(self) -> int | None:
        value = self.arch_value("context_length")
        return value if isinstance(value, int) else None

    @property
    def embedding_length(self) -> int | None:
        value = self.arch_value("embedding_length")
        return value if isinstance(value, int) else None

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) else None

    @property
    def parameter_size(self) -> str:
        """Ollama's ``parameter_size`` text, e.g. ``134.52M``."""
        return format_parameter_count(self.parameter_count)

    @property
    def is_embedding_model(self) -> bool:
        """True for embedding-only models (a pooling type, or an encoder architecture)."""
        return (
            self.architecture in EMBEDDING_ARCHITECTURES
            or self.arch_value("pooling_type") is not None
        )

    @property
    def has_fim_tokens(self) -> bool:
        """Whether the tokenizer defines fill-in-the-middle prefix, suffix and middle tokens."""
        names = [("fim_pre", "fim_suf", "fim_mid"), ("prefix", "suffix", "middle")]
        return any(
            all(f"tokenizer.ggml.{part}_token_id" in self.metadata for part in parts)
            for parts in names
        )


def format_parameter_count(count: int) -> str:
    """Format a parameter count as Ollama does: ``7B``, ``1.5B``, ``134.52M``, ``12K``."""
    if count >= 1_000_000_000:
        value = count / 1_000_000_000
        return f"{value:.0f}B" if value == int(value) else f"{value:.1f}B"
    if count >= 1_000_000:
        value = count / 1_000_000
        return f"{value:.0f}M" if value == int(value) else f"{value:.2f}M"
    if count >= 1_000:
        return f"{count / 1_000:.0f}K"
    return str(count)


def _walk_strings(buffer: bytes, rel: int, count: int) -> tuple[int, int]:
    """Step over up to ``count`` whole strings in ``buffer`` from ``rel``; returns the new
    offset and how many. The hot loop of every vocabulary: kept to the fewest operations."""
    unpack, end = _U64.unpack_from, len(buffer)
    walked = count
    try:
        for index in range(count):
            following = rel + 8 + unpack(buffer, rel)[0]
            if following > end:  # this string runs past the buffer
                walked = index
                break
            rel = following
    except struct.error:  # its length runs past the buffer
        walked = index
    return rel, walked


def _slice_strings(buffer: bytes, rel: int, count: int, into: list[bytes]) -> int:
    """Append up to ``count`` whole strings in ``buffer`` from ``rel`` to ``into``; returns
    the new offset. Stops before a string that crosses the buffer's end or claims more than
    :data:`MAX_STRING_LENGTH` (the careful path reads or refuses it)."""
    unpack, end, append = _U64.unpack_from, len(buffer), into.append
    try:
        for _ in range(count):
            length = unpack(buffer, rel)[0]
            following = rel + 8 + length
            if following > end or length > MAX_STRING_LENGTH:
                break
            append(buffer[rel + 8 : following])
            rel = following
    except struct.error:  # its length runs past the buffer
        pass
    return rel


class _Cursor:
    """Sequential little-endian reads through a sliding buffer, bounded by the file size."""

    def __init__(self, handle: BinaryIO, size: int, name: str) -> None:
        self._handle = handle
        self.size = size
        self._name = name
        self._buffer = b""
        self._start = 0  # file offset of _buffer[0]
        self.pos = 0

    def fail(self, reason: str) -> InvalidModelFile:
        return InvalidModelFile(f"{self._name}: {reason}")

    @property
    def remaining(self) -> int:
        return self.size - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.remaining:
            raise self.fail(f"truncated file (needs {n} more bytes for {what} at {self.pos})")
        rel = self.pos - self._start
        if rel + n > len(self._buffer):
            self._handle.seek(self.pos)
            self._buffer = self._handle.read(max(n, _BUFFER))
            self._start, rel = self.pos, 0
            if len(self._buffer) < n:
                raise self.fail(f"truncated file while reading {what} at {self.pos}")
        self.pos += n
        return self._buffer[rel : rel + n]

    def unpack(self, fmt: str, size: int, what: str) -> Any:
        return struct.unpack("<" + fmt, self.take(size, what))[0]

    def u32(self, what: str) -> int:
        return int(self.unpack("I", 4, what))

    def u64(self, what: str) -> int:
        return int(self.unpack("Q", 8, what))

    def skip_strings(self, count: int, what: str) -> None:
        """Skip ``count`` strings, walking the buffer directly (vocabularies are large)."""
        done = 0
        while done < count:
            rel = self.pos - self._start
            rel, walked = _walk_strings(self._buffer, rel, count - done)
            done += walked
            self.pos = self._start + rel
            if done < count:  # the next string crosses the buffer: the careful path
                self.string(what, keep=False)
                done += 1

    def raw_strings(self, count: int, what: str) -> list[bytes]:
        """``count`` strings' bytes, sliced from the buffer directly (vocabularies are large)."""
        strings: list[bytes] = []
        while len(strings) < count:
            left = count - len(strings)
            self.pos = self._start + _slice_strings(
                self._buffer, self.pos - self._start, left, strings
            )
            if len(strings) < count:  # the next string crosses the buffer: the careful path
                strings.append(self.raw_string(what))
        return strings

    def raw_string(self, what: str) -> bytes:
        """A string's bytes as the file holds them (a vocabulary's may not be UTF-8)."""
        length = self.u64(f"length of {what}")
        if length > MAX_STRING_LENGTH:
            raise self.fail(f"{what} claims {length} bytes, more than any GGUF string")
        if length > self.remaining:
            raise self.fail(f"truncated file ({what} claims {length} bytes at {self.pos})")
        return self.take(length, what)

    def string(self, what: str, *, keep: bool = True) -> str:
        raw = self.raw_string(what)
        if not keep:
            return ""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            # Tokenizer vocabularies sometimes hold byte pieces that are not valid UTF-8.
            return raw.decode("utf-8", errors="replace")


def read_gguf_info(
    path: str | os.PathLike[str],
    *,
    include_large_arrays: bool = False,
    raw_arrays: Collection[str] = (),
) -> GGUFInfo:
    """Parse and check the header of the GGUF file at ``path``.

    Raises :class:`~power_core.errors.InvalidModelFile` for a missing or unreadable file,
    a wrong magic, an unsupported version, a truncated header, counts or lengths larger
    than the file could hold, unknown value or tensor types, and tensor data that would
    lie beyond the end of the file. Arrays with more than :data:`LARGE_ARRAY_THRESHOLD`
    elements are left out of ``metadata`` (their lengths go to ``large_arrays``) unless
    ``include_large_arrays`` is true. String arrays named in ``raw_arrays`` are read
    whatever their size, as lists of the bytes the file holds (not decoded).
    """
    name = Path(path).name
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, after the size check
    except OSError as exc:
        raise InvalidModelFile(f"cannot open model file {name}: {exc.strerror}") from exc
    with handle:
        size = os.fstat(handle.fileno()).st_size
        cursor = _Cursor(handle, size, name)
        return _parse(cursor, include_large_arrays, frozenset(raw_arrays))


def _parse(cursor: _Cursor, include_large: bool, raw_arrays: frozenset[str]) -> GGUFInfo:
    if cursor.size < 24:
        raise cursor.fail("not a GGUF file (too short for a GGUF header)")
    magic = cursor.take(4, "magic")
    if magic != MAGIC:
        raise cursor.fail(f"not a GGUF file (magic {magic!r}, expected {MAGIC!r})")
    version = cursor.u32("version")
    if version not in SUPPORTED_VERSIONS:
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        if swapped in SUPPORTED_VERSIONS:
            raise cursor.fail("big-endian GGUF files are not supported")
        raise cursor.fail(f"unsupported GGUF version {version} (supported: 2, 3)")
    tensor_count = cursor.u64("tensor count")
    kv_count = cursor.u64("metadata count")
    # Smallest possible entries: a key/value is 8 (key length) + 4 (type) + 1 byte; a
    # tensor info is 8 (name length) + 4 (dims) + 4 (type) + 8 (offset).
    if kv_count > MAX_KV_COUNT or kv_count * 13 > cursor.remaining:
        raise cursor.fail(f"absurd metadata count {kv_count}")
    if tensor_count > MAX_TENSOR_COUNT or tensor_count * 24 > cursor.remaining:
        raise cursor.fail(f"absurd tensor count {tensor_count}")

    metadata: dict[str, Any] = {}
    large: dict[str, int] = {}
    spans: dict[str, tuple[int, int]] = {}
    for _ in range(kv_count):
        start = cursor.pos
        key = cursor.string("metadata key")
        value_type = cursor.u32(f"type of {key!r}")
        if key in raw_arrays and value_type == _ARRAY:
            metadata[key] = _read_raw_strings(cursor, key)
        else:
            metadata[key] = _read_value(cursor, key, value_type, include_large, large, 0)
        spans[key] = (start, cursor.pos)
    for key in large:
        if not include_large:
            metadata.pop(key, None)

    tensors = [_read_tensor_info(cursor) for _ in range(tensor_count)]

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise cursor.fail(f"invalid general.alignment {alignment!r}")
    data_offset = -(-cursor.pos // alignment) * alignment
    data_size = cursor.size - data_offset
    parameters = 0
    for tensor in tensors:
        block, type_size = GGML_TYPE_SIZES[tensor.type]
        elements = tensor.n_elements
        if elements % block:
            raise cursor.fail(f"tensor {tensor.name!r} has {elements} elements, not blocks")
        end = tensor.offset + elements // block * type_size
        if tensor.offset % alignment or end > data_size:
            raise cursor.fail(
                f"tensor {tensor.name!r} data lies beyond the end of the file "
                f"(needs {data_offset + end} bytes, file has {cursor.size})"
            )
        parameters += elements
    return GGUFInfo(
        version=version,
        metadata=metadata,
        tensor_count=tensor_count,
        large_arrays=large,
        parameter_count=parameters,
        data_offset=data_offset,
        file_size=cursor.size,
        tensors=tensors,
        kv_spans=spans,
    )


def _read_value(
    cursor: _Cursor,
    key: str,
    value_type: int,
    include_large: bool,
    large: dict[str, int],
    depth: int,
) -> Any:
    scalar = _SCALARS.get(value_type)
    if scalar is not None:
        return cursor.unpack(scalar[0], scalar[1], f"value of {key!r}")
    if value_type == _STRING:
        return cursor.string(f"value of {key!r}")
    if value_type != _ARRAY:
        raise cursor.fail(f"unknown value type {value_type} for {key!r}")
    if depth >= MAX_NESTING:
        raise cursor.fail(f"arrays nested too deeply in {key!r}")
    item_type = cursor.u32(f"array type of {key!r}")
    count = cursor.u64(f"array length of {key!r}")
    item = _SCALARS.get(item_type)
    min_item = item[1] if item is not None else (8 if item_type == _STRING else 12)
    if item is None and item_type not in (_STRING, _ARRAY):
        raise cursor.fail(f"unknown array element type {item_type} for {key!r}")
    if count > MAX_ARRAY_LENGTH or count * min_item > cursor.remaining:
        raise cursor.fail(
            f"array {key!r} claims {count} elements, more than the file holds "
            "(a truncated or corrupt file)"
        )
    keep = include_large or count <= LARGE_ARRAY_THRESHOLD
    if not keep:
        large[key] = count
    if item is not None:
        raw = cursor.take(count * item[1], f"array {key!r}")
        return list(struct.unpack(f"<{count}{item[0]}", raw)) if keep else None
    if item_type == _STRING:
        what = f"element of {key!r}"
        if keep:
            return [cursor.string(what) for _ in range(count)]
        cursor.skip_strings(count, what)
        return None
    return [_read_value(cursor, key, _ARRAY, include_large, large, depth + 1) for _ in range(count)]


def _read_raw_strings(cursor: _Cursor, key: str) -> list[bytes]:
    """A string array's elements as bytes (an array of another type is refused)."""
    item_type = cursor.u32(f"array type of {key!r}")
    count = cursor.u64(f"array length of {key!r}")
    if item_type != _STRING:
        raise cursor.fail(f"{key!r} is not an array of strings")
    if count > MAX_ARRAY_LENGTH or count * 8 > cursor.remaining:
        raise cursor.fail(
            f"array {key!r} claims {count} elements, more than the file holds "
            "(a truncated or corrupt file)"
        )
    return cursor.raw_strings(count, f"element of {key!r}")


def _read_tensor_info(cursor: _Cursor) -> TensorInfo:
    raw_name = cursor.raw_string("tensor name")
    name = raw_name.decode("utf-8", errors="replace")
    n_dims = cursor.u32(f"dimensions of tensor {name!r}")
    if n_dims == 0 or n_dims > MAX_TENSOR_DIMS:
        raise cursor.fail(f"tensor {name!r} has {n_dims} dimensions (1 to 4 allowed)")
    shape = tuple(cursor.u64(f"shape of tensor {name!r}") for _ in range(n_dims))
    count = 1
    for dim in shape:
        if dim == 0 or dim > 1 << 40:
            raise cursor.fail(f"tensor {name!r} has an absurd dimension {dim}")
        count *= dim
    if count > 1 << 48:
        raise cursor.fail(f"tensor {name!r} has an absurd element count {count}")
    tensor_type = cursor.u32(f"type of tensor {name!r}")
    if tensor_type not in GGML_TYPE_SIZES:
        raise cursor.fail(f"tensor {name!r} has unknown type {tensor_type}")
    offset = cursor.u64(f"offset of tensor {name!r}")
    return TensorInfo(name=name, shape=shape, type=tensor_type, offset=offset, raw_name=raw_name)


def check_gguf_magic(head: bytes) -> bool:
    """Whether the first bytes of a file look like a GGUF file (magic and version)."""
    if len(head) < 8 or head[:4] != MAGIC:
        return False
    return struct.unpack("<I", head[4:8])[0] in SUPPORTED_VERSIONS

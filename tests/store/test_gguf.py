"""The bounded GGUF header reader: real files from the ``gguf`` package, and broken ones."""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from gguf.constants import GGML_QUANT_SIZES, LlamaFileType

from power_core import gguf
from power_core.errors import InvalidModelFile
from power_core.gguf import (
    FILE_TYPE_NAMES,
    GGML_TYPE_SIZES,
    LARGE_ARRAY_THRESHOLD,
    check_gguf_magic,
    format_parameter_count,
    read_gguf_info,
)

MAGIC = b"GGUF"
U32, U64, STR, ARR = 4, 10, 8, 9


def gstr(text: str | bytes, length: int | None = None) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw) if length is None else length) + raw


def kv(key: str, value_type: int, payload: bytes) -> bytes:
    return gstr(key) + struct.pack("<I", value_type) + payload


def kv_u32(key: str, value: int) -> bytes:
    return kv(key, U32, struct.pack("<I", value))


def tensor(name: str, dims: tuple[int, ...], ggml_type: int = 0, offset: int = 0) -> bytes:
    return (
        gstr(name)
        + struct.pack("<I", len(dims))
        + b"".join(struct.pack("<Q", d) for d in dims)
        + struct.pack("<IQ", ggml_type, offset)
    )


def raw_gguf(
    kvs: list[bytes],
    tensors: list[bytes],
    data: bytes = b"",
    *,
    version: int = 3,
    n_tensors: int | None = None,
    n_kv: int | None = None,
) -> bytes:
    head = MAGIC + struct.pack(
        "<IQQ",
        version,
        len(tensors) if n_tensors is None else n_tensors,
        len(kvs) if n_kv is None else n_kv,
    )
    body = head + b"".join(kvs) + b"".join(tensors)
    return body + b"\0" * ((-len(body)) % 32) + data


def write(tmp_path: Path, raw: bytes, name: str = "raw.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(raw)
    return path


GOOD_KVS = [kv("general.architecture", STR, gstr("llama")), kv_u32("llama.context_length", 512)]
GOOD_TENSORS = [tensor("w", (4,), 0, 0)]
GOOD_DATA = b"\0" * 16


def test_raw_builder_makes_a_valid_file(tmp_path: Path) -> None:
    info = read_gguf_info(write(tmp_path, raw_gguf(GOOD_KVS, GOOD_TENSORS, GOOD_DATA)))
    assert info.architecture == "llama"
    assert info.context_length == 512
    assert info.parameter_count == 4


def test_tiny_gguf_from_the_gguf_package(make_gguf: Callable[..., Path]) -> None:
    path = make_gguf(file_type=15, vocab=300, fim=True)
    info = read_gguf_info(path)
    assert info.version == 3
    assert info.architecture == info.family == "llama"
    assert info.quantization == "Q4_K_M"
    assert info.context_length == 2048
    assert info.embedding_length == 64
    assert info.chat_template is not None and "<|im_start|>" in info.chat_template
    assert info.tensor_count == 2
    assert info.parameter_count == 16 * 8 + 4 * 8
    assert info.parameter_size == "160"
    assert info.has_fim_tokens
    assert not info.is_embedding_model
    # the vocabulary is recorded by length only
    assert info.large_arrays == {"tokenizer.ggml.tokens": 300, "tokenizer.ggml.token_type": 300}
    assert "tokenizer.ggml.tokens" not in info.metadata
    full = read_gguf_info(path, include_large_arrays=True)
    assert full.metadata["tokenizer.ggml.tokens"][:2] == ["tok0", "tok1"]
    assert len(full.metadata["tokenizer.ggml.token_type"]) == 300
    assert full.large_arrays == {}


def test_small_arrays_are_kept(make_gguf: Callable[..., Path]) -> None:
    info = read_gguf_info(make_gguf(vocab=LARGE_ARRAY_THRESHOLD))
    assert len(info.metadata["tokenizer.ggml.tokens"]) == LARGE_ARRAY_THRESHOLD
    assert info.large_arrays == {}


def test_embedding_models_are_recognised(make_gguf: Callable[..., Path]) -> None:
    assert read_gguf_info(make_gguf(arch="bert")).is_embedding_model
    assert read_gguf_info(make_gguf(arch="qwen3", pooling=True)).is_embedding_model


def test_unknown_file_type_and_missing_file_type(make_gguf: Callable[..., Path]) -> None:
    assert read_gguf_info(make_gguf(file_type=None)).quantization == "unknown"
    assert read_gguf_info(make_gguf(file_type=999)).quantization == "unknown"


def test_version_2_is_supported(tiny_gguf: Path) -> None:
    raw = bytearray(tiny_gguf.read_bytes())
    raw[4:8] = struct.pack("<I", 2)
    tiny_gguf.write_bytes(bytes(raw))
    assert read_gguf_info(tiny_gguf).version == 2


@pytest.mark.parametrize(
    "content",
    [b"", b"GGU", b"GGML" + b"\0" * 60, b"\0" * 64, b"<!DOCTYPE html><html>" + b" " * 60],
)
def test_wrong_magic_or_too_short(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(InvalidModelFile, match="not a GGUF file"):
        read_gguf_info(write(tmp_path, content))


@pytest.mark.parametrize("version", [0, 1, 4, 99, 0xFFFFFFFF])
def test_unsupported_versions(tmp_path: Path, version: int) -> None:
    raw = raw_gguf(GOOD_KVS, GOOD_TENSORS, GOOD_DATA, version=version)
    with pytest.raises(InvalidModelFile, match="unsupported GGUF version"):
        read_gguf_info(write(tmp_path, raw))


def test_big_endian_is_named(tmp_path: Path) -> None:
    raw = bytearray(raw_gguf(GOOD_KVS, GOOD_TENSORS, GOOD_DATA))
    raw[4:8] = struct.pack(">I", 3)
    with pytest.raises(InvalidModelFile, match="big-endian"):
        read_gguf_info(write(tmp_path, bytes(raw)))


def test_every_truncation_is_rejected(tmp_path: Path, make_gguf: Callable[..., Path]) -> None:
    source = make_gguf(vocab=40)
    raw = source.read_bytes()
    info = read_gguf_info(source)
    needed = info.data_offset + max(
        t.offset + t.n_elements // GGML_TYPE_SIZES[t.type][0] * GGML_TYPE_SIZES[t.type][1]
        for t in info.tensors
    )
    path = tmp_path / "cut.gguf"
    path.write_bytes(raw[:needed])
    assert read_gguf_info(path).tensor_count == 2
    # Shrinking one file in place is much cheaper than writing a file per length.
    for cut in range(needed - 1, -1, -1):
        os.truncate(path, cut)
        with pytest.raises(InvalidModelFile):
            read_gguf_info(path)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (raw_gguf(GOOD_KVS, GOOD_TENSORS, GOOD_DATA, n_kv=2**40), "absurd metadata count"),
        (raw_gguf(GOOD_KVS, GOOD_TENSORS, GOOD_DATA, n_kv=2**64 - 1), "absurd metadata count"),
        (raw_gguf(GOOD_KVS, GOOD_TENSORS, GOOD_DATA, n_tensors=2**62), "absurd tensor count"),
        (raw_gguf([kv("k", STR, gstr("v", 2**60))], []), "claims"),
        (raw_gguf([gstr("k", 2**63) + b"xx"], []), "claims"),
        (raw_gguf([kv("k", ARR, struct.pack("<IQ", U32, 2**40))], []), "claims"),
        (raw_gguf([kv("k", ARR, struct.pack("<IQ", 0, 10_000) + b"\0" * 50)], []), "claims"),
        (raw_gguf([kv("k", ARR, struct.pack("<IQ", STR, 2**33))], []), "claims"),
        (raw_gguf([kv("k", ARR, struct.pack("<IQ", 99, 1))], []), "unknown array element"),
        (raw_gguf([kv("k", 13, b"\0" * 8)], []), "unknown value type"),
        (raw_gguf([kv("k", ARR, struct.pack("<IQ", ARR, 1) * 6 + b"\0" * 64)], []), "nested"),
        (raw_gguf(GOOD_KVS, [tensor("w", (1, 1, 1, 1, 1))], GOOD_DATA), "dimensions"),
        (raw_gguf(GOOD_KVS, [tensor("w", ())], GOOD_DATA), "dimensions"),
        (raw_gguf(GOOD_KVS, [tensor("w", (4, 0))], GOOD_DATA), "absurd dimension"),
        (raw_gguf(GOOD_KVS, [tensor("w", (2**41,))], GOOD_DATA), "absurd dimension"),
        (raw_gguf(GOOD_KVS, [tensor("w", (2**30, 2**30))], GOOD_DATA), "absurd element count"),
        (raw_gguf(GOOD_KVS, [tensor("w", (4,), 99)], GOOD_DATA), "unknown type"),
        (raw_gguf(GOOD_KVS, [tensor("w", (4,), 0, 2**40)], GOOD_DATA), "beyond the end"),
        (raw_gguf(GOOD_KVS, [tensor("w", (4,), 0, 0)], b"\0" * 15), "beyond the end"),
        (raw_gguf(GOOD_KVS, [tensor("w", (4,), 0, 3)], GOOD_DATA * 2), "beyond the end"),
        (raw_gguf(GOOD_KVS, [tensor("w", (10,), 2)], b"\0" * 64), "not blocks"),
        (raw_gguf([kv_u32("general.alignment", 3)], GOOD_TENSORS, GOOD_DATA), "alignment"),
        (raw_gguf([kv_u32("general.alignment", 0)], GOOD_TENSORS, GOOD_DATA), "alignment"),
    ],
)
def test_absurd_headers_are_rejected(tmp_path: Path, raw: bytes, message: str) -> None:
    with pytest.raises(InvalidModelFile, match=message):
        read_gguf_info(write(tmp_path, raw))


def test_missing_and_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(InvalidModelFile, match="cannot open"):
        read_gguf_info(tmp_path / "absent.gguf")
    with pytest.raises(InvalidModelFile, match="cannot open"):
        read_gguf_info(tmp_path)


def test_random_corruption_never_escapes_as_another_error(
    tmp_path: Path, make_gguf: Callable[..., Path]
) -> None:
    source = make_gguf(vocab=300, fim=True)
    raw = source.read_bytes()
    info = read_gguf_info(source)
    rng = random.Random(20240601)
    path = tmp_path / "fuzz.gguf"
    path.write_bytes(raw)
    outcomes = {"parsed": 0, "rejected": 0}
    with open(path, "r+b") as handle:
        for _ in range(400):
            positions = [rng.randrange(info.data_offset) for _ in range(rng.randint(1, 4))]
            for position in positions:  # corrupt in place, then restore
                handle.seek(position)
                handle.write(bytes([rng.randrange(256)]))
            handle.flush()
            try:
                read_gguf_info(path)
                outcomes["parsed"] += 1
            except InvalidModelFile:
                outcomes["rejected"] += 1
            for position in positions:
                handle.seek(position)
                handle.write(raw[position : position + 1])
    assert outcomes["rejected"] > 0 and sum(outcomes.values()) == 400


def test_type_tables_match_the_gguf_package() -> None:
    for quant, (block, size) in GGML_QUANT_SIZES.items():
        if quant.name == "Q8_1":
            continue  # gguf-py lists an old layout of this in-memory-only type
        assert GGML_TYPE_SIZES[quant.value] == (block, size), quant.name
    for file_type in LlamaFileType:
        if file_type.name in {"GUESSED", "MOSTLY_MXFP4_MOE"}:
            continue
        assert FILE_TYPE_NAMES[file_type.value] == file_type.name.removeprefix(
            "MOSTLY_"
        ).removeprefix("ALL_"), file_type.name


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (7_000_000_000, "7B"),
        (1_540_000_000, "1.5B"),
        (134_515_008, "134.52M"),
        (135_000_000, "135M"),
        (12_345, "12K"),
        (999, "999"),
    ],
)
def test_parameter_counts_format_like_ollama(count: int, text: str) -> None:
    assert format_parameter_count(count) == text


def test_magic_check() -> None:
    assert check_gguf_magic(MAGIC + struct.pack("<I", 3))
    assert check_gguf_magic(MAGIC + struct.pack("<I", 2) + b"rest")
    assert not check_gguf_magic(MAGIC + struct.pack("<I", 1))
    assert not check_gguf_magic(b"GGUF")
    assert not check_gguf_magic(b"<html><body>")


@pytest.mark.model
def test_real_smollm2(model_path: Path) -> None:
    info = read_gguf_info(model_path)
    assert info.architecture == "llama"
    assert info.quantization == "Q4_1"
    assert info.context_length == 8192
    assert info.embedding_length == 576
    assert info.parameter_count == 134_515_008
    assert info.parameter_size == "134.52M"
    assert info.chat_template is not None and "<|im_start|>" in info.chat_template
    assert info.large_arrays["tokenizer.ggml.tokens"] == 49152
    assert info.data_offset < info.file_size


@pytest.mark.model
@pytest.mark.parametrize("buffer_size", [4099, 65_536 + 7])
def test_vocabularies_are_skipped_across_small_read_buffers(
    model_path: Path, buffer_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every read buffer boundary splits a token string or its length somewhere; skipping
    # must land exactly where reading every string does.
    whole = read_gguf_info(model_path)
    monkeypatch.setattr(gguf, "_BUFFER", buffer_size)
    assert read_gguf_info(model_path) == whole
    full = read_gguf_info(model_path, include_large_arrays=True)
    assert len(full.metadata["tokenizer.ggml.tokens"]) == 49152
    assert full.tensors == whole.tensors and full.data_offset == whole.data_offset


@pytest.mark.model
@pytest.mark.parametrize("buffer_size", [4099, 65_536 + 7, 1 << 20])
def test_raw_vocabularies_are_read_across_small_read_buffers(
    model_path: Path, buffer_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The raw path slices strings out of the read buffer; each boundary splits a string or
    # its length somewhere, and every token must still come out whole and in order.
    full = read_gguf_info(model_path, include_large_arrays=True)
    monkeypatch.setattr(gguf, "_BUFFER", buffer_size)
    raw = read_gguf_info(model_path, raw_arrays=("tokenizer.ggml.tokens",))
    tokens = raw.metadata["tokenizer.ggml.tokens"]
    assert all(isinstance(token, bytes) for token in tokens)
    decoded = [token.decode("utf-8", errors="replace") for token in tokens]
    assert decoded == full.metadata["tokenizer.ggml.tokens"]
    assert raw.tensors == full.tensors and raw.data_offset == full.data_offset


def test_a_raw_string_longer_than_any_gguf_string_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the limit lowered to just above the file's keys (21 bytes at most)
    long_token = b"x" * 40
    path = tmp_path / "long-token.gguf"
    path.write_bytes(_raw_gguf_with_tokens([b"ab", long_token, b"c"]))
    monkeypatch.setattr(gguf, "MAX_STRING_LENGTH", 39)
    with pytest.raises(InvalidModelFile, match="claims 40 bytes, more than any GGUF string"):
        read_gguf_info(path, raw_arrays=("tokenizer.ggml.tokens",))
    monkeypatch.setattr(gguf, "MAX_STRING_LENGTH", 40)
    tokens = read_gguf_info(path, raw_arrays=("tokenizer.ggml.tokens",)).metadata
    assert tokens["tokenizer.ggml.tokens"] == [b"ab", long_token, b"c"]


def _raw_gguf_with_tokens(tokens: list[bytes]) -> bytes:
    array = struct.pack("<IQ", STR, len(tokens)) + b"".join(gstr(token) for token in tokens)
    return raw_gguf([*GOOD_KVS, kv("tokenizer.ggml.tokens", ARR, array)], GOOD_TENSORS, GOOD_DATA)

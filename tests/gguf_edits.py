"""Copies of a GGUF file with one header value changed in place, as a damaged or hostile
file would have it (the ``gguf`` package's reader, opened for writing)."""

from __future__ import annotations

import shutil
from pathlib import Path

import gguf


def edited_copy(source: Path, target: Path, key: str, value: float) -> Path:
    """``source`` copied to ``target`` with the scalar ``key`` set to ``value``."""
    shutil.copyfile(source, target)
    reader = gguf.GGUFReader(target, "r+")
    field = reader.fields[key]
    field.parts[field.data[0]][0] = value
    reader.data.flush()
    return target


def copy_with_a_token_twice(source: Path, target: Path) -> tuple[Path, str]:
    """``source`` copied to ``target`` with one token's text made another's (of the same
    length); returns the path and that text."""
    shutil.copyfile(source, target)
    reader = gguf.GGUFReader(target, "r+")
    field = reader.fields["tokenizer.ggml.tokens"]
    texts = [bytes(field.parts[index]) for index in field.data]
    by_length: dict[int, int] = {}
    for number, text in enumerate(texts):
        if len(text) > 1 and len(text) in by_length:
            first = by_length[len(text)]
            field.parts[field.data[number]][:] = field.parts[field.data[first]]
            reader.data.flush()
            return target, texts[first].decode()
        by_length[len(text)] = number
    raise AssertionError("no two tokens of one length")

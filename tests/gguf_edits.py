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


def copy_with_values(source: Path, target: Path, values: dict[str, tuple[object, int]]) -> Path:
    """``source`` written again to ``target`` with the header values in ``values`` (name:
    value and ``gguf.GGUFValueType``) added or replaced, the tensors copied as they are."""
    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(target, str(reader.fields["general.architecture"].contents()))
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in ("general.architecture", *values):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    for name, (value, kind) in values.items():
        writer.add_key_value(name, value, gguf.GGUFValueType(kind))
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return target

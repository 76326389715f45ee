"""GGUF models split into parts by the ``gguf`` package's own writer (as ``gguf-split`` and
``convert_hf_to_gguf.py --split-max-tensors`` write them): ``<stem>-00001-of-0000N.gguf``."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
from gguf.scripts.gguf_new_metadata import copy_with_new_metadata


def split_copy(source: Path, folder: Path, stem: str, parts: int) -> list[Path]:
    """``source`` written again as ``parts`` files in ``folder``; returns them in order."""
    reader = gguf.GGUFReader(source)
    per_part = -(-len(reader.tensors) // parts)
    arch = str(reader.fields["general.architecture"].contents())
    writer = gguf.GGUFWriter(folder / f"{stem}.gguf", arch, split_max_tensors=per_part)
    copy_with_new_metadata(reader, writer, {}, [])
    written = sorted(folder.glob(f"{stem}-*-of-*.gguf"))
    assert len(written) == parts, written
    return written


def write_tiny_model(path: Path, *, split_max_tensors: int = 0, context_length: int = 64) -> None:
    """Five tensors of different sizes (unaligned lengths) under ``path``, whole or split."""
    writer = gguf.GGUFWriter(path, "llama", split_max_tensors=split_max_tensors)
    writer.add_block_count(1)
    writer.add_context_length(context_length)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"t{i}" for i in range(300)])  # a large array, skipped by reading
    for index in range(5):
        writer.add_tensor(f"w{index}", np.arange(7 * (index + 1), dtype=np.float32) + index)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

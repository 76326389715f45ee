"""Models split into several GGUF files, joined into one on their way into the store.

Large models are published in parts (llama.cpp's ``gguf-split``, the ``-00001-of-00003.gguf``
files of Hugging Face): the first part holds the metadata and some tensors, every part says
which it is (``split.no``, from 0) of how many (``split.count``). The store and the backends
read one GGUF file per model, so a split model is joined as it comes in: a pull of the first
part's URL downloads every part, and a create from the first part's path reads the parts
beside it. The joined file is the one llama.cpp's ``gguf-split --merge`` writes: the first
part's metadata less the ``split.*`` keys, then every part's tensors in order, each at the
file's alignment.

The parts are checked before anything is written: each must be a readable GGUF that says it
is the part its name says, of the same count; a missing part is named.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from power_core.errors import InvalidModelFile, InvalidRequest
from power_core.gguf import DEFAULT_ALIGNMENT, MAGIC, GGUFInfo, read_gguf_info
from power_core.store.writes import write_all

#: how llama.cpp names the parts: ``<prefix>-00001-of-00003.gguf``
_PART_NAME = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
_SPLIT_KEYS = frozenset({"split.no", "split.count", "split.tensors.count"})
#: bytes copied at once from a part
_COPY_BYTES = 1 << 20


@dataclass(frozen=True)
class SplitPart:
    """Which part of a split model a GGUF file is: ``number`` (from 1) of ``count``."""

    number: int
    count: int


#: the most parts a model may come in (llama.cpp's naming allows 99,999; models in
#: parts come in tens)
MAX_PARTS = 1000


def split_part(info: GGUFInfo) -> SplitPart | None:
    """The part ``info``'s file is, or ``None`` for a whole model (no ``split.count``, or 1)."""
    count = info.metadata.get("split.count")
    if not isinstance(count, int) or not _is_count(count) or count <= 1:
        return None
    number = info.metadata.get("split.no", 0)
    return SplitPart(number + 1 if _is_count(number) else 0, count)


def part_number(info: GGUFInfo) -> int:
    """Which part ``info``'s file is (from 1), 0 for a whole model: the order to join in."""
    part = split_part(info)
    return part.number if part is not None else 0


def looks_like_first_part(name: str) -> bool:
    """Whether a file name (or URL path) is llama.cpp's name for a first part."""
    match = _PART_NAME.search(name)
    return match is not None and int(match.group(1)) == 1


def part_names(first_name: str, count: int) -> list[str]:
    """The names of all ``count`` parts, from the first part's file name (or URL path).

    Raises InvalidRequest when the name is not llama.cpp's ``-00001-of-0000N.gguf``: the
    other parts could not be found by it.
    """
    if count > MAX_PARTS:
        raise InvalidRequest(
            f"{first_name} says the model is in {count} parts; this server joins at most "
            f"{MAX_PARTS}",
            param="from",
        )
    match = _PART_NAME.search(first_name)
    if match is None or int(match.group(1)) != 1 or int(match.group(2)) != count:
        raise InvalidRequest(
            f"{first_name} is the first of {count} parts of a split GGUF model, but its name "
            f"does not end in -00001-of-{count:05d}.gguf, which names the other parts",
            param="from",
        )
    prefix, extension = first_name[: match.start()], first_name[match.end() - 5 :]
    return [f"{prefix}-{index:05d}-of-{count:05d}{extension}" for index in range(1, count + 1)]


def whole_model_name(name: str) -> str:
    """``name`` without a part's ``-00001-of-00003`` (the model it is part of)."""
    return _PART_NAME.sub(".gguf", name)


def refuse_later_part(label: str, part: SplitPart) -> None:
    """Refuse a part other than the first: only the first holds the model's metadata."""
    if part.number != 1:
        raise InvalidRequest(
            f"{label} is part {part.number} of {part.count} of a split GGUF model: give the "
            f"first part (-00001-of-{part.count:05d}.gguf), with the others beside it",
            param="from",
        )


def refuse_split(label: str, info: GGUFInfo) -> None:
    """Refuse one part of a split model where its parts cannot be found (an uploaded
    blob): the model is all of them."""
    part = split_part(info)
    if part is not None:
        raise InvalidRequest(
            f"{label} is part {part.number} of {part.count} of a split GGUF model: pull the "
            "first part's URL, or create from the first part's file with the others beside "
            "it, and the parts are joined into one model",
            param="from",
        )


def read_parts(paths: Sequence[Path], labels: Sequence[str]) -> list[GGUFInfo]:
    """Read and check every part's header: part ``i`` of ``len(paths)`` each, in order.

    Raises InvalidRequest naming a missing part, or one that is another's.
    """
    infos = []
    count = len(paths)
    for index, (path, label) in enumerate(zip(paths, labels, strict=True), start=1):
        if not path.is_file():
            raise InvalidRequest(
                f"part {index} of {count} of the split model is missing: {label}", param="from"
            )
        try:
            info = read_gguf_info(path)
        except InvalidModelFile as exc:
            raise InvalidRequest(f"part {index} of {count}: {exc.message}", param="from") from None
        part = split_part(info)
        if part != SplitPart(index, count):
            said = f"part {part.number} of {part.count}" if part else "a whole model"
            raise InvalidRequest(
                f"{label} should be part {index} of {count} of a split model; it says it is {said}",
                param="from",
            )
        infos.append(info)
    names: set[bytes] = set()
    for index, info in enumerate(infos, start=1):
        for tensor in info.tensors:
            name = tensor.raw_name or tensor.name.encode("utf-8")
            if name in names:
                raise InvalidRequest(
                    f"part {index} of {count} holds the tensor {tensor.name!r} an earlier "
                    "part holds too; a model has each tensor once",
                    param="from",
                )
            names.add(name)
    tensors = infos[0].metadata.get("split.tensors.count")
    held = sum(info.tensor_count for info in infos)
    if _is_count(tensors) and tensors != held:
        raise InvalidRequest(
            f"the {count} parts hold {held} tensors; the first says the model has {tensors}",
            param="from",
        )
    return infos


def join_parts(
    paths: Sequence[Path],
    infos: Sequence[GGUFInfo],
    destination: IO[bytes],
    report: Callable[[int, int], None],
) -> int:
    """Write the joined model to ``destination`` (at its start); returns its size.

    ``report(done, total)`` follows the bytes of tensor data written. OSErrors of the
    parts or the destination propagate.
    """
    first = infos[0]
    alignment = first.metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    kept = [key for key in first.kv_spans if key not in _SPLIT_KEYS]
    tensor_count = sum(info.tensor_count for info in infos)
    head = bytearray(MAGIC + struct.pack("<IQQ", first.version, tensor_count, len(kept)))
    with open(paths[0], "rb") as handle:
        for key in kept:
            start, end = first.kv_spans[key]
            handle.seek(start)
            head += handle.read(end - start)
    offset = 0
    placed: list[tuple[int, int, int, int]] = []  # part, its offset, new offset, size
    for index, info in enumerate(infos):
        for tensor in info.tensors:
            name = tensor.raw_name or tensor.name.encode("utf-8")
            head += struct.pack("<Q", len(name)) + name
            head += struct.pack(f"<I{len(tensor.shape)}Q", len(tensor.shape), *tensor.shape)
            head += struct.pack("<IQ", tensor.type, offset)
            placed.append((index, info.data_offset + tensor.offset, offset, tensor.n_bytes))
            offset += _aligned(tensor.n_bytes, alignment)  # each tensor padded, the last too
    head += bytes(_aligned(len(head), alignment) - len(head))
    write_all(destination, head)
    total, written = offset, 0
    for index, path in enumerate(paths):  # one part open at a time: placed in part order
        with open(path, "rb") as handle:
            for part, source, target, size in placed:
                if part != index:
                    continue
                _copy(handle, source, size, destination)
                padding = _aligned(size, alignment) - size
                if padding:
                    write_all(destination, bytes(padding))
                written = target + size + padding
                report(written, total)
    return len(head) + written


def _copy(source: IO[bytes], start: int, size: int, destination: IO[bytes]) -> None:
    source.seek(start)
    while size:
        chunk = source.read(min(size, _COPY_BYTES))
        if not chunk:
            raise OSError(f"{source.name} ended before its tensor data")
        write_all(destination, chunk)
        size -= len(chunk)


def _aligned(offset: int, alignment: int) -> int:
    return -(-offset // alignment) * alignment


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0

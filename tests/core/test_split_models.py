"""Joining a model split into GGUF parts: byte for byte what the unsplit file holds, and a
clear refusal for every part that is missing, misplaced or foreign."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from power_core.errors import InvalidRequest
from power_core.gguf import read_gguf_info
from power_core.split_models import (
    SplitPart,
    join_parts,
    part_names,
    read_parts,
    refuse_later_part,
    refuse_split,
    split_part,
    whole_model_name,
)
from split_files import write_tiny_model


@pytest.fixture
def model(tmp_path: Path) -> tuple[bytes, list[Path]]:
    """The whole file's bytes, and the same model in 3 parts. (The default alignment: the
    ``gguf`` package writes a custom one into the first part only, and pads the others to
    it, so no reader finds their data.)"""
    write_tiny_model(tmp_path / "whole.gguf")
    write_tiny_model(tmp_path / "m.gguf", split_max_tensors=2)
    parts = sorted(tmp_path.glob("m-*-of-*.gguf"))
    assert [p.name for p in parts] == [f"m-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    return (tmp_path / "whole.gguf").read_bytes(), parts


def joined(parts: list[Path], reports: list[tuple[int, int]] | None = None) -> bytes:
    infos = read_parts(parts, [p.name for p in parts])
    out = io.BytesIO()
    kept = reports if reports is not None else []
    size = join_parts(parts, infos, out, lambda done, total: kept.append((done, total)))
    assert size == len(out.getvalue())
    return out.getvalue()


def test_the_joined_parts_are_the_whole_file(model: tuple[bytes, list[Path]]) -> None:
    whole, parts = model
    reports: list[tuple[int, int]] = []
    assert joined(parts, reports) == whole
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)
    assert reports[-1][0] == reports[-1][1]
    info = read_gguf_info(parts[0])
    assert split_part(info) == SplitPart(1, 3)
    assert split_part(read_gguf_info(parts[2])) == SplitPart(3, 3)


def test_a_whole_model_is_no_part(model: tuple[bytes, list[Path]], tmp_path: Path) -> None:
    assert split_part(read_gguf_info(tmp_path / "whole.gguf")) is None
    refuse_split("whole.gguf", read_gguf_info(tmp_path / "whole.gguf"))  # nothing to refuse


def test_part_names_follow_llama_cpp() -> None:
    assert part_names("Qwen-7B.Q4_K_M-00001-of-00003.gguf", 3) == [
        f"Qwen-7B.Q4_K_M-0000{i}-of-00003.gguf" for i in (1, 2, 3)
    ]
    assert whole_model_name("/x/Qwen-7B-Q4_K_M-00001-of-00003.gguf") == "/x/Qwen-7B-Q4_K_M.gguf"
    assert whole_model_name("plain.gguf") == "plain.gguf"
    with pytest.raises(InvalidRequest, match=r"does not end in -00001-of-00003\.gguf"):
        part_names("renamed.gguf", 3)
    with pytest.raises(InvalidRequest, match=r"does not end in -00001-of-00004\.gguf"):
        part_names("m-00001-of-00003.gguf", 4)


def test_a_later_part_names_the_first() -> None:
    refuse_later_part("m-00001-of-00003.gguf", SplitPart(1, 3))
    with pytest.raises(InvalidRequest, match=r"part 2 of 3 .*give the first part"):
        refuse_later_part("m-00002-of-00003.gguf", SplitPart(2, 3))


def test_a_part_alone_is_refused(model: tuple[bytes, list[Path]]) -> None:
    _, parts = model
    with pytest.raises(InvalidRequest, match=r"blob x is part 1 of 3 of a split GGUF model"):
        refuse_split("blob x", read_gguf_info(parts[0]))


def test_a_missing_part_is_named(model: tuple[bytes, list[Path]]) -> None:
    _, parts = model
    parts[1].unlink()
    with pytest.raises(InvalidRequest, match=r"part 2 of 3 of the split model is missing: m-0+2"):
        read_parts(parts, [p.name for p in parts])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda parts: [parts[0], parts[2], parts[1]], r"should be part 2 of 3 .* part 3 of 3"),
        (lambda parts: [parts[0], parts[0], parts[2]], r"should be part 2 of 3 .* part 1 of 3"),
    ],
    ids=["swapped", "repeated"],
)
def test_a_misplaced_part_is_refused(
    model: tuple[bytes, list[Path]], change: Callable[[list[Path]], list[Path]], message: str
) -> None:
    _, parts = model
    moved = change(parts)
    with pytest.raises(InvalidRequest, match=message):
        read_parts(moved, [p.name for p in moved])


def test_a_part_of_another_split_or_a_whole_model_is_refused(
    model: tuple[bytes, list[Path]], tmp_path: Path
) -> None:
    _, parts = model
    write_tiny_model(tmp_path / "other.gguf", split_max_tensors=3)  # 2 parts
    other = sorted(tmp_path.glob("other-*-of-*.gguf"))
    mixed = [parts[0], other[1], parts[2]]
    with pytest.raises(InvalidRequest, match=r"should be part 2 of 3 .* part 2 of 2"):
        read_parts(mixed, [p.name for p in mixed])
    whole = [parts[0], tmp_path / "whole.gguf", parts[2]]
    with pytest.raises(InvalidRequest, match=r"should be part 2 of 3 .* a whole model"):
        read_parts(whole, [p.name for p in whole])


def test_a_damaged_part_is_refused_in_the_readers_words(
    model: tuple[bytes, list[Path]],
) -> None:
    _, parts = model
    parts[2].write_bytes(parts[2].read_bytes()[:100])
    with pytest.raises(InvalidRequest, match=r"part 3 of 3: .*truncated"):
        read_parts(parts, [p.name for p in parts])


def _renamed(path: Path, old: bytes, new: bytes) -> None:
    """Rename the tensor ``old`` of the file at ``path`` to ``new`` (of the same length)."""
    data = path.read_bytes()
    entry = struct.pack("<Q", len(old)) + old
    assert data.count(entry) == 1
    path.write_bytes(data.replace(entry, struct.pack("<Q", len(new)) + new))


def test_a_tensor_in_two_parts_is_refused(model: tuple[bytes, list[Path]]) -> None:
    _, parts = model
    _renamed(parts[1], b"w2", b"w0")  # part 1 holds w0 already
    with pytest.raises(InvalidRequest, match=r"part 2 of 3 holds the tensor 'w0' an earlier"):
        read_parts(parts, [p.name for p in parts])


def test_tensor_names_are_copied_as_the_file_holds_them(
    model: tuple[bytes, list[Path]], tmp_path: Path
) -> None:
    _, parts = model
    _renamed(parts[1], b"w2", b"w\xff")  # not UTF-8
    whole = tmp_path / "whole.gguf"
    _renamed(whole, b"w2", b"w\xff")
    assert joined(parts) == whole.read_bytes()

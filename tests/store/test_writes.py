"""Blob bytes reach the disk in slices of at most 64 KiB (see power_core.store.writes), all
of them, in order, even when the file takes less than it is given."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from power_core.store.local import LocalStore
from power_core.store.writes import WRITE_SLICE, write_all


class RecordingFile(io.RawIOBase):
    """A real file that records the size of every write and, if ``short``, takes at most
    that many bytes per call (as a write interrupted by a signal does)."""

    def __init__(self, path: Path, short: int | None = None) -> None:
        self._file = open(path, "wb", buffering=0)  # noqa: SIM115 - closed in close()
        self._short = short
        self.sizes: list[int] = []

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._file.fileno()

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data)
        self.sizes.append(len(view))
        if self._short is not None:
            view = view[: self._short]
        return self._file.write(view) or 0

    def close(self) -> None:
        self._file.close()
        super().close()


def test_write_all_writes_everything_in_slices(tmp_path: Path) -> None:
    data = os.urandom(3 * WRITE_SLICE + 123)
    with RecordingFile(tmp_path / "blob") as handle:
        write_all(handle, data)
    assert (tmp_path / "blob").read_bytes() == data
    assert handle.sizes == [WRITE_SLICE] * 3 + [123]


def test_write_all_finishes_short_writes(tmp_path: Path) -> None:
    data = os.urandom(WRITE_SLICE + 10)
    with RecordingFile(tmp_path / "blob", short=1000) as handle:
        write_all(handle, data)
    assert (tmp_path / "blob").read_bytes() == data
    assert max(handle.sizes) == WRITE_SLICE and len(handle.sizes) > (WRITE_SLICE + 10) // 1000


def test_the_store_writes_big_chunks_in_slices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "models")
    files: list[RecordingFile] = []

    def open_temp(temp: Path) -> io.BufferedWriter:
        files.append(RecordingFile(temp))
        return io.BufferedWriter(files[-1])

    monkeypatch.setattr(store, "_open_temp", open_temp)
    chunk = os.urandom(1 << 20)
    blob = store.put_blob_stream([chunk, chunk])
    assert store.blob_path(blob.digest).read_bytes() == chunk + chunk
    assert files[0].sizes and max(files[0].sizes) <= WRITE_SLICE

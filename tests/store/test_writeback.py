"""Early write-back during downloads: the writer never waits, and closing always returns."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from power_core.pull.writeback import EarlyWriteback


def _finishes(work: Callable[[], None], seconds: float = 30) -> bool:
    """Run ``work`` on a thread; False if it is still running after ``seconds``."""
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


def test_a_file_written_with_early_writeback_is_complete(tmp_path: Path) -> None:
    piece = os.urandom(64 << 10)
    target = tmp_path / "download.part"

    def write() -> None:
        with open(target, "wb", buffering=0) as handle:
            with EarlyWriteback(handle.fileno(), every=256 << 10) as writeback:
                for _ in range(64):  # 4 MiB: sixteen background flushes asked for
                    handle.write(piece)
                    writeback.wrote(len(piece))
            os.fsync(handle.fileno())

    assert _finishes(write)
    assert target.read_bytes() == piece * 64


def test_a_descriptor_that_cannot_sync_still_closes(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()  # fdatasync on a pipe fails (EINVAL)
    try:
        writeback = EarlyWriteback(write_end, every=1)
        writeback.wrote(1)  # the thread's flush fails and it stops
        writeback.wrote(1)  # later requests find nobody listening: still no wait
        assert _finishes(writeback.close)
        assert _finishes(writeback.close)  # closing twice is harmless
    finally:
        os.close(read_end)
        os.close(write_end)


def test_closing_without_writes_returns(tmp_path: Path) -> None:
    with open(tmp_path / "empty.part", "wb") as handle:
        assert _finishes(EarlyWriteback(handle.fileno()).close)

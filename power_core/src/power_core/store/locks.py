"""Advisory file locks that coordinate writers and the garbage collector across processes.

Writers (a pull or create committing blobs and then a manifest) hold the store lock
shared; the garbage collector holds it exclusive, so it never deletes a blob that a
manifest is about to reference. Waiting polls with ``time.sleep`` so that under gevent
(where ``time.sleep`` yields) a waiting request does not freeze the server.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; locking is then a no-op
    fcntl = None  # type: ignore[assignment]

_POLL_SECONDS = 0.02


@contextmanager
def file_lock(path: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold an advisory ``flock`` on ``path`` (created if missing) for the ``with`` body.

    Each call opens its own descriptor, so the lock also separates threads of one process.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = locked_descriptor(path, exclusive=exclusive, flags=os.O_RDWR | os.O_CREAT)
    try:
        yield
    finally:
        # Closing the descriptor releases the lock.
        os.close(fd)


def locked_descriptor(path: Path, *, exclusive: bool, flags: int) -> int:
    """A descriptor of ``path`` (opened with ``flags``) holding an advisory ``flock``,
    waited for with ``time.sleep``. A holder may remove or replace the file before it lets
    go (see :func:`power_core.store.partial.open_partial`); a lock won on a file no longer
    at ``path`` locks nothing, so it is dropped and ``path`` opened afresh. Without
    ``os.O_CREAT`` in ``flags``, ``FileNotFoundError`` when ``path`` is gone."""
    while True:
        fd = os.open(path, flags, 0o644)
        if fcntl is None:
            return fd
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        try:
            while True:
                try:
                    fcntl.flock(fd, mode)
                    break
                except BlockingIOError:
                    time.sleep(_POLL_SECONDS)
            if _same_file(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


@contextmanager
def lock_if_free(path: Path) -> Iterator[bool]:
    """Try an exclusive ``flock`` on ``path`` (created if missing) without waiting:
    yields whether it was won, held for the ``with`` body if so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
        yield True
    finally:
        os.close(fd)

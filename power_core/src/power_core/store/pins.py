"""Blobs kept from the garbage collector while work that is no model yet uses them.

The parts of a split model are blobs that no manifest references while they are pulled
and joined, which may take hours; the collector removes unreferenced blobs that are an hour
old, and a pull that finishes removes its own parts, which another pull of the same parts
may still need. So such work pins what it uses: each holder has a file in ``pins/``,
locked (``flock``) for as long as it holds, listing one digest per line. The collector
counts the digests of every locked pin file as referenced, and removes a pin file nobody
holds (its holder is gone). Any process on the machine sees the pins of the others.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock: pins then hold nothing
    fcntl = None  # type: ignore[assignment]

_DIGEST_LINE = re.compile(rb"sha256:[0-9a-f]{64}")


@contextmanager
def holding_pins(folder: Path) -> Iterator[Callable[[str], None]]:
    """Pin blobs for the ``with`` body: yields ``pin(digest)``. Pin a blob, then check it
    is still there (a collection may have removed it just before)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex
    path = folder / f"{name}.pin"
    made = folder / f"{name}.new"  # locked before it is a pin file, so never seen unheld
    fd = os.open(made, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.replace(made, path)

        def pin(digest: str) -> None:
            os.write(fd, f"{digest}\n".encode())

        yield pin
    finally:
        for leftover in (path, made):
            with suppress(FileNotFoundError):
                leftover.unlink()
        os.close(fd)


def pinned_digests(folder: Path) -> set[str]:
    """The digests pinned by live holders (``sha256:<hex>``); removes dead holders' files."""
    digests: set[str] = set()
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return digests
    for name in names:
        if not name.endswith(".pin"):
            continue
        path = folder / name
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            if fcntl is not None and _unheld(fd):
                with suppress(FileNotFoundError):
                    path.unlink()
                continue
            with os.fdopen(os.dup(fd), "rb") as handle:
                lines = handle.read().split(b"\n")
            digests.update(line.decode() for line in lines if _DIGEST_LINE.fullmatch(line))
        finally:
            os.close(fd)
    return digests


def _unheld(fd: int) -> bool:
    """Whether nobody holds the pin file ``fd`` (its holder is gone)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


@contextmanager
def pinning(store: object) -> Iterator[Callable[[str], None]]:
    """``store``'s pins (:meth:`~power_core.store.local.LocalStore.pinning`); a store
    without them (a plugin's) gets a ``pin`` that does nothing."""
    pins = getattr(store, "pinning", None)
    if pins is None:
        yield lambda digest: None
        return
    with pins() as pin:
        yield pin

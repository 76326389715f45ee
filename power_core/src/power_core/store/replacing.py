"""Writing a model over one of the same name (``cp``, ``create`` or ``pull`` onto an
existing name): the blobs only the replaced manifest used are removed once it is replaced,
as a delete removes them, not left for the collection of stale blobs an hour later."""

from __future__ import annotations

from power_core.errors import InvalidModelFile
from power_core.names import ModelRef
from power_core.store.base import ModelStore
from power_core.store.manifest import Manifest


def current_digests(store: ModelStore, ref: ModelRef) -> list[str]:
    """The blobs model ``ref`` references now: none when there is no such model or its
    manifest cannot be read. Read under the store's write lock, with the write after."""
    try:
        stored = store.read_manifest(ref)
    except (InvalidModelFile, OSError):
        return []
    return stored.manifest.digests if stored is not None else []


def collect_replaced(store: ModelStore, replaced: list[str], manifest: Manifest) -> None:
    """Remove the blobs of ``replaced`` that ``manifest`` (written in its place) and no
    other model uses. Call it after the write lock is released: collecting takes the
    store's exclusive lock."""
    dropped = set(replaced) - set(manifest.digests)
    if dropped:
        store.gc(sorted(dropped))

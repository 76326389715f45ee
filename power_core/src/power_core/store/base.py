"""The model store interface: content-addressed blobs plus named manifests.

The ``register_stores`` hook contributes factories of :class:`ModelStore`; the built-in
``local`` store (:class:`power_core.store.local.LocalStore`) keeps Ollama's layout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

from power_core.names import ModelRef
from power_core.store.manifest import Manifest


class StoredBlob(NamedTuple):
    """A verified blob: ``sha256:<hex>`` and its size in bytes."""

    digest: str
    size: int


@dataclass
class StoredManifest:
    """A manifest as stored under a name."""

    ref: ModelRef
    manifest: Manifest
    #: SHA-256 hex of the manifest's bytes (the model ID)
    digest: str
    modified_at: datetime


@runtime_checkable
class PartialDownload(Protocol):
    """A resumable download in progress: a data file and a little JSON state."""

    #: the file the bytes are appended to
    path: Path

    def size(self) -> int:
        """Bytes downloaded so far (0 when nothing is kept)."""
        ...

    def read_state(self) -> dict[str, Any]:
        """What the downloader saved (URL, validators, total); ``{}`` when none."""
        ...

    def write_state(self, state: dict[str, Any]) -> None:
        """Save the downloader's state atomically."""
        ...

    def discard(self) -> None:
        """Forget the bytes and the state (restart from zero)."""
        ...


@runtime_checkable
class ModelStore(Protocol):
    """Blobs addressed by SHA-256 digest, and manifests addressed by model name.

    Every method that takes a digest validates it (``sha256:`` or ``sha256-`` plus 64
    lowercase hex) and raises :class:`~power_core.errors.InvalidDigest` otherwise.
    Blobs are written verify-then-commit; manifests are written atomically and only
    after every blob they reference is in the store.
    """

    #: the folder holding ``blobs/`` and ``manifests/``
    root: Path

    def has_blob(self, digest: str) -> bool:
        """Whether a committed blob with this digest exists."""
        ...

    def blob_path(self, digest: str) -> Path:
        """The file of a committed blob; raises BlobNotFound when absent."""
        ...

    def put_blob_stream(
        self,
        chunks: Iterable[bytes],
        *,
        expected_digest: str | None = None,
        expected_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> StoredBlob:
        """Store a stream as a blob, hashing as it is written.

        Raises DigestMismatch (nothing stored) when the bytes do not match the expected
        digest or size. ``progress`` receives the number of bytes written so far.
        """
        ...

    def put_blob_file(
        self,
        path: Path,
        *,
        expected_digest: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> StoredBlob:
        """Copy a file into the store as a blob (the source file is left alone)."""
        ...

    def put_blob_bytes(self, data: bytes, *, expected_digest: str | None = None) -> StoredBlob:
        """Store a small in-memory blob (a template, parameters JSON, ...)."""
        ...

    def scratch_file(self, kind: str) -> AbstractContextManager[Path]:
        """A path in the store's temp area for a file being made (absent at first, on
        the same disk as the blobs), removed when the block ends; one a crash leaves
        behind goes with the next :meth:`gc` once stale."""
        ...

    def keep_scratch(self, path: Path) -> StoredBlob:
        """Store the finished scratch file ``path`` as a blob by moving it, not copying it
        (a quantized model's weights are gigabytes); the path is gone afterwards."""
        ...

    def read_blob_bytes(self, digest: str, *, max_size: int) -> bytes:
        """Read a small blob whole; raises InvalidModelFile when larger than ``max_size``."""
        ...

    def list_manifests(self) -> list[StoredManifest]:
        """Every readable manifest (damaged ones are skipped)."""
        ...

    def read_manifest(self, ref: ModelRef) -> StoredManifest | None:
        """The manifest stored under ``ref`` (matched case-insensitively), or ``None``."""
        ...

    def write_manifest(self, ref: ModelRef, manifest: Manifest) -> str:
        """Store ``manifest`` under ``ref`` atomically; returns its SHA-256 hex.

        Raises BlobNotFound when a referenced blob is not committed.
        """
        ...

    def delete_manifest(self, ref: ModelRef) -> list[str]:
        """Remove the manifest, then blobs no manifest references any more.

        Returns the digests of removed blobs; raises ModelNotFound when absent.
        """
        ...

    def gc(self, candidates: Iterable[str] = ()) -> list[str]:
        """Remove unreferenced blobs: the ``candidates`` at once, others when stale."""
        ...

    def write_lock(self) -> AbstractContextManager[None]:
        """Hold while putting blobs and then the manifest that references them."""
        ...

    def partial_download(self, key: str) -> AbstractContextManager[PartialDownload]:
        """Exclusive access to the resumable download named ``key`` (hex, any length)."""
        ...

    def commit_partial(self, partial: PartialDownload, *, digest: str, size: int) -> StoredBlob:
        """Turn a finished download into a blob; the caller hashed its bytes as they came.

        Checks the size on disk, syncs and renames the file into ``blobs/`` (or drops it
        when the blob already exists) and forgets the download state.
        """
        ...


#: what a ``register_stores`` plugin registers: ``factory(models_dir) -> ModelStore``
StoreFactory = Callable[[Path], ModelStore]

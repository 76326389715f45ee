"""The built-in ``local`` store: Ollama's on-disk layout in one folder.

::

    <models>/blobs/sha256-<hex>                                  content-addressed blobs
    <models>/manifests/<host>/<namespace>/<model>/<tag>          Docker v2 manifests
    <models>/partial/<key>.part|.json|.lock                      resumable downloads
    <models>/tmp/                                                files being written

Crash safety comes from ordering: a blob is streamed to ``tmp/`` while hashed, checked,
synced and only then renamed into ``blobs/``; a manifest is written last, also through a
rename. A kill at any moment leaves at worst stray files in ``tmp/`` or ``partial/``,
never a manifest that points at a missing or unverified blob.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from power_core.errors import (
    BlobNotFound,
    DigestMismatch,
    InsufficientStorage,
    InvalidModelFile,
    InvalidModelName,
    InvalidRequest,
    ModelNotFound,
    PowerError,
    StoreUnavailable,
)
from power_core.names import ModelRef
from power_core.store.base import PartialDownload, StoredBlob, StoredManifest
from power_core.store.digests import blob_file_name, digest_from_hex, digest_hex
from power_core.store.locks import file_lock
from power_core.store.manifest import MAX_MANIFEST_BYTES, Manifest
from power_core.store.partial import LocalPartialDownload, open_partial
from power_core.store.pins import holding_pins, pinned_digests
from power_core.store.writes import write_all

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
#: unreferenced blobs and temp files older than this are collected by any gc run
STALE_SECONDS = 3600.0


#: manifests remembered by :meth:`LocalStore.read_manifest` and listings (more are read
#: afresh); above every store's model count, or each listing would empty it partway
_MANIFEST_CACHE_SIZE = 4096


def disk_error(exc: OSError, root: Path) -> PowerError:
    """A clear error for an OS failure while writing into the store."""
    if exc.errno == errno.ENOSPC:
        return InsufficientStorage(f"not enough disk space in {root} to store the model")
    return PowerError(f"cannot write to the model store {root}: {exc.strerror or exc}")


def replace_durably(path: Path, data: bytes, aside: Path) -> None:
    """Make ``path`` hold ``data``: written to ``aside`` (in the same folder), synced, then
    renamed over ``path``, the folder synced after; a crash leaves the old file or the new
    one, never a torn one, and nothing aside. OSError when the disk refuses."""
    try:
        with open(aside, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(aside, path)
    finally:
        with suppress(OSError):  # renamed into place, or never made
            aside.unlink()
    sync_folder(path.parent)


def sync_folder(path: Path) -> None:
    """Make a rename, creation or removal in the folder ``path`` durable; best effort, as
    some filesystems refuse to open folders."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LocalStore:
    """Blobs and manifests in Ollama's layout under ``models_dir``."""

    def __init__(self, models_dir: Path, *, stale_seconds: float = STALE_SECONDS) -> None:
        self.root = Path(models_dir)
        self.blobs_dir = self.root / "blobs"
        self.manifests_dir = self.root / "manifests"
        self.tmp_dir = self.root / "tmp"
        self.partial_dir = self.root / "partial"
        self._lock_path = self.root / ".lock"
        self.stale_seconds = stale_seconds
        #: path -> (file identity, manifest read from it); see :meth:`read_manifest`
        self._manifests: dict[Path, tuple[tuple[int, int, int, int], StoredManifest]] = {}

    # ------------------------------------------------------------------------ blobs
    def _blob_file(self, digest: str) -> Path:
        return self.blobs_dir / blob_file_name(digest)

    def has_blob(self, digest: str) -> bool:
        """Whether a committed blob with this digest exists."""
        return self._blob_file(digest).is_file()

    def blob_path(self, digest: str) -> Path:
        """The file of a committed blob; raises BlobNotFound when absent."""
        path = self._blob_file(digest)
        if not path.is_file():
            raise BlobNotFound(f"blob {digest} not found", param="digest")
        return path

    def _temp_path(self, kind: str) -> Path:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        return self.tmp_dir / f"{kind}-{uuid.uuid4().hex}"

    @contextmanager
    def scratch_file(self, kind: str) -> Iterator[Path]:
        """A fresh path in ``tmp/`` (``<kind>-<random>``), removed when the block ends."""
        try:
            path = self._temp_path(kind)
        except OSError as exc:
            raise disk_error(exc, self.root) from exc
        try:
            yield path
        finally:
            with suppress(FileNotFoundError):
                path.unlink()

    def keep_scratch(self, path: Path) -> StoredBlob:
        """Hash ``path`` (one of :meth:`scratch_file`'s, on the blobs' disk) where it lies,
        make it durable and rename it into ``blobs/``: no second copy of the weights."""
        hasher = hashlib.sha256()
        size = 0
        try:
            with open(path, "rb") as handle:
                for chunk in _read_chunks(handle, path):
                    hasher.update(chunk)
                    size += len(chunk)
                os.fsync(handle.fileno())
        except OSError as exc:
            raise disk_error(exc, self.root) from exc
        return self._commit(path, hasher.hexdigest(), size)

    def put_blob_stream(
        self,
        chunks: Iterable[bytes],
        *,
        expected_digest: str | None = None,
        expected_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> StoredBlob:
        """Stream into ``tmp/`` while hashing, check digest and size, sync, then rename.

        Raises DigestMismatch (nothing stored) on a wrong digest or size, and
        InsufficientStorage when the disk is full.
        """
        expected_hex = digest_hex(expected_digest) if expected_digest is not None else None
        if expected_size is not None and expected_size < 0:
            raise InvalidRequest("expected size must not be negative")
        temp = self._temp_path("blob")
        hasher = hashlib.sha256()
        written = 0
        try:
            with self._open_temp(temp) as handle:
                # Errors of the source (a client that went away) propagate unchanged;
                # only the store's own writes become disk errors.
                for chunk in chunks:
                    if not chunk:
                        continue
                    written += len(chunk)
                    if expected_size is not None and written > expected_size:
                        raise DigestMismatch(
                            f"content is longer than the expected {expected_size} bytes"
                        )
                    hasher.update(chunk)
                    self._write(handle, chunk)
                    if progress is not None:
                        progress(written)
                self._sync(handle)
            if expected_size is not None and written != expected_size:
                raise DigestMismatch(f"content is {written} bytes, expected {expected_size} bytes")
            actual = hasher.hexdigest()
            if expected_hex is not None and actual != expected_hex:
                raise DigestMismatch(
                    f"content has digest sha256:{actual}, expected sha256:{expected_hex}",
                    param="digest",
                )
            return self._commit(temp, actual, written)
        finally:
            with suppress(FileNotFoundError):
                temp.unlink()

    def _open_temp(self, temp: Path) -> BinaryIO:
        try:
            return open(temp, "xb")
        except OSError as exc:
            raise disk_error(exc, self.root) from exc

    def _write(self, handle: BinaryIO, chunk: bytes) -> None:
        try:
            write_all(handle, chunk)
        except OSError as exc:
            raise disk_error(exc, self.root) from exc

    def _sync(self, handle: BinaryIO) -> None:
        try:
            handle.flush()
            os.fsync(handle.fileno())
        except OSError as exc:
            raise disk_error(exc, self.root) from exc

    def put_blob_file(
        self,
        path: Path,
        *,
        expected_digest: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> StoredBlob:
        """Copy a file into the store as a verified blob; the source is left alone."""
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError as exc:
            raise InvalidRequest(f"file not found: {path}") from exc
        except OSError as exc:
            raise InvalidRequest(f"cannot read {path}: {exc.strerror or exc}") from exc
        with handle:
            size = os.fstat(handle.fileno()).st_size
            chunks = _read_chunks(handle, path)
            return self.put_blob_stream(
                chunks, expected_digest=expected_digest, expected_size=size, progress=progress
            )

    def put_blob_bytes(self, data: bytes, *, expected_digest: str | None = None) -> StoredBlob:
        """Store a small in-memory blob."""
        return self.put_blob_stream(
            [data], expected_digest=expected_digest, expected_size=len(data)
        )

    def read_blob_bytes(self, digest: str, *, max_size: int) -> bytes:
        """Read a small blob whole; raises InvalidModelFile when it is larger than allowed."""
        path = self.blob_path(digest)
        with open(path, "rb") as handle:
            data = handle.read(max_size + 1)
        if len(data) > max_size:
            raise InvalidModelFile(f"blob {digest} is larger than {max_size} bytes")
        return data

    def _commit(self, temp: Path, hex_digest: str, size: int) -> StoredBlob:
        """Rename a verified, synced temp file into ``blobs/`` (or drop it: deduplicated)."""
        digest = digest_from_hex(hex_digest)
        target = self._blob_file(digest)
        try:
            if target.is_file() and target.stat().st_size == size:
                temp.unlink()
                # A fresh mtime tells a concurrent gc that this blob is wanted again.
                with suppress(OSError):
                    os.utime(target)
            else:
                self.blobs_dir.mkdir(parents=True, exist_ok=True)
                os.replace(temp, target)
                sync_folder(self.blobs_dir)
        except OSError as exc:
            raise disk_error(exc, self.root) from exc
        return StoredBlob(digest, size)

    # -------------------------------------------------------------------- manifests
    def _manifest_files(self) -> Iterator[tuple[Path, tuple[str, str, str, str]]]:
        _check_not_under_a_file(self.manifests_dir)
        # a folder below the root that cannot be read is one damaged entry, not the store
        for host in _sorted_entries(self.manifests_dir, dirs=True):
            for namespace in _sorted_entries(host.path, dirs=True, skip_unreadable=True):
                for model in _sorted_entries(namespace.path, dirs=True, skip_unreadable=True):
                    for tag in _sorted_entries(model.path, dirs=False, skip_unreadable=True):
                        names = (host.name, namespace.name, model.name, tag.name)
                        yield Path(tag.path), names

    def _load(self, path: Path, ref: ModelRef) -> StoredManifest:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
            mtime = os.fstat(handle.fileno()).st_mtime
        manifest = Manifest.from_bytes(raw, f"manifest of {ref.display}")
        return StoredManifest(
            ref=ref,
            manifest=manifest,
            digest=hashlib.sha256(raw).hexdigest(),
            modified_at=datetime.fromtimestamp(mtime).astimezone(),
        )

    def list_manifests(self) -> list[StoredManifest]:
        """Every readable manifest; damaged ones and odd names are skipped with a warning.

        Clients poll the listing (``/api/tags``, ``/v1/models``) while models generate, so
        it reads only manifests that changed since this store last read them.
        """
        found: dict[ModelRef, StoredManifest] = {}
        for path, (host, namespace, model, tag) in self._manifest_files():
            try:
                ref = ModelRef.parse(f"{host}/{namespace}/{model}:{tag}")
                if ref not in found:
                    stored = self._remembered_load(path, ref)
                    if stored is not None:
                        found[ref] = stored
            except (InvalidModelName, InvalidModelFile, OSError) as exc:
                log.warning("skipping manifest %s: %s", path, exc)
        return list(found.values())

    def _find_manifest(self, ref: ModelRef) -> Path | None:
        exact = self.manifests_dir.joinpath(*ref.manifest_parts)
        if exact.is_file():
            return exact
        # Ollama keeps the case people typed; match each level case-insensitively.
        current = self.manifests_dir
        for part in ref.manifest_parts:
            if not current.is_dir():
                return None
            match = next((p for p in current.iterdir() if p.name.lower() == part), None)
            if match is None:
                return None
            current = match
        return current if current.is_file() else None

    def read_manifest(self, ref: ModelRef) -> StoredManifest | None:
        """The manifest stored under ``ref``, or ``None``; raises InvalidModelFile if damaged.
        Every request reads its model's manifest, so reads are remembered."""
        path = self._find_manifest(ref)
        return None if path is None else self._remembered_load(path, ref)

    def _remembered_load(self, path: Path, ref: ModelRef) -> StoredManifest | None:
        """The manifest at ``path`` (``None`` if it is gone), read again only when the file
        changed: manifests are replaced by renaming a new file over them, which changes the
        inode, and any other write changes the change time (which, unlike the modification
        time, cannot be set back)."""
        try:
            status = path.stat()
            identity = (status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
            cached = self._manifests.get(path)
            if cached is not None and cached[0] == identity and cached[1].ref == ref:
                return cached[1]
            stored = self._load(path, ref)
        except FileNotFoundError:  # deleted meanwhile
            self._manifests.pop(path, None)
            return None
        if len(self._manifests) >= _MANIFEST_CACHE_SIZE:
            self._manifests.clear()
        self._manifests[path] = (identity, stored)
        return stored

    def write_manifest(self, ref: ModelRef, manifest: Manifest) -> str:
        """Check every referenced blob is committed, then write the manifest atomically."""
        for layer in [manifest.config, *manifest.layers]:
            path = self._blob_file(layer.digest)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise BlobNotFound(f"blob {layer.digest} is not in the store") from None
            if size != layer.size:
                raise InvalidModelFile(
                    f"blob {layer.digest} has {size} bytes, the manifest says {layer.size}"
                )
        raw = manifest.to_bytes()
        target = self._find_manifest(ref) or self.manifests_dir.joinpath(*ref.manifest_parts)
        temp = self._temp_path("manifest")
        try:
            with open(temp, "xb") as handle:
                handle.write(raw)
                handle.flush()
                os.fsync(handle.fileno())
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)
            self._manifests.pop(target, None)
            sync_folder(target.parent)
        except OSError as exc:
            raise disk_error(exc, self.root) from exc
        finally:
            with suppress(FileNotFoundError):
                temp.unlink()
        return hashlib.sha256(raw).hexdigest()

    def delete_manifest(self, ref: ModelRef) -> list[str]:
        """Remove the manifest, then the blobs no other manifest references."""
        with file_lock(self._lock_path, exclusive=True):
            path = self._find_manifest(ref)
            if path is None:
                raise ModelNotFound(ref.display)
            candidates: list[str] = []
            with suppress(InvalidModelFile, OSError):
                candidates = self._load(path, ref).manifest.digests
            path.unlink()
            self._manifests.pop(path, None)
            sync_folder(path.parent)
            parent = path.parent
            while parent != self.manifests_dir and parent.is_relative_to(self.manifests_dir):
                try:
                    parent.rmdir()  # only succeeds when empty
                except OSError:
                    break
                parent = parent.parent
            return self._collect(candidates)

    # ----------------------------------------------------------------- gc and locks
    def write_lock(self) -> AbstractContextManager[None]:
        """Shared lock held while committing blobs and the manifest that uses them."""
        return file_lock(self._lock_path, exclusive=False)

    def pinning(self) -> AbstractContextManager[Callable[[str], None]]:
        """Keep blobs from :meth:`gc` for the ``with`` body: yields ``pin(digest)`` (see
        :mod:`power_core.store.pins`)."""
        return holding_pins(self.root / "pins")

    def gc(self, candidates: Iterable[str] = ()) -> list[str]:
        """Remove unreferenced blobs: ``candidates`` at once, others once stale; blobs
        pinned by work under way (:meth:`pinning`) stay."""
        with file_lock(self._lock_path, exclusive=True):
            return self._collect(list(candidates))

    def _collect(self, candidates: list[str]) -> list[str]:
        referenced: set[str] = set()
        for path, _parts in self._manifest_files():
            try:
                with open(path, "rb") as handle:
                    raw = handle.read(MAX_MANIFEST_BYTES + 1)
                manifest = Manifest.from_bytes(raw, str(path))
            except (InvalidModelFile, OSError) as exc:
                # We cannot know what a damaged manifest references: remove nothing.
                log.warning("not collecting blobs: unreadable manifest %s (%s)", path, exc)
                return []
            referenced.update(digest_hex(d) for d in manifest.digests)
        referenced.update(digest_hex(d) for d in pinned_digests(self.root / "pins"))
        wanted = {digest_hex(d) for d in candidates}
        cutoff = time.time() - self.stale_seconds
        removed: list[str] = []
        if self.blobs_dir.is_dir():
            for blob in self.blobs_dir.iterdir():
                name = blob.name
                if not name.startswith("sha256-") or len(name) != 71:
                    continue  # not ours (an Ollama partial download, say)
                hex_digest = name[7:]
                if hex_digest in referenced:
                    continue
                try:
                    if hex_digest in wanted or blob.stat().st_mtime < cutoff:
                        blob.unlink()
                        removed.append("sha256:" + hex_digest)
                except FileNotFoundError:
                    continue
                except OSError as exc:  # a folder where a blob should be, say: the rest goes
                    log.warning("cannot remove blob %s: %s", blob, exc.strerror or exc)
        if self.tmp_dir.is_dir():
            for temp in self.tmp_dir.iterdir():
                with suppress(OSError):
                    if temp.stat().st_mtime < cutoff:
                        temp.unlink()
        return removed

    # ------------------------------------------------------------ partial downloads
    def partial_download(self, key: str) -> AbstractContextManager[PartialDownload]:
        """Exclusive access to the resumable download named ``key``."""
        return open_partial(self.partial_dir, key)

    def commit_partial(self, partial: PartialDownload, *, digest: str, size: int) -> StoredBlob:
        """Sync a finished download and rename it into ``blobs/``; forget its state."""
        hex_digest = digest_hex(digest)
        if partial.size() != size:
            raise DigestMismatch(f"download has {partial.size()} bytes, expected {size}")
        try:
            with open(partial.path, "rb+") as handle:
                os.fsync(handle.fileno())
        except OSError as exc:
            raise disk_error(exc, self.root) from exc
        with self.write_lock():
            blob = self._commit(partial.path, hex_digest, size)
        if isinstance(partial, LocalPartialDownload):
            partial.forget_state()
        else:
            partial.discard()
        return blob


def _read_chunks(handle: BinaryIO, path: Path) -> Iterator[bytes]:
    while True:
        try:
            chunk = handle.read(CHUNK_SIZE)
        except OSError as exc:
            raise InvalidRequest(f"cannot read {path}: {exc.strerror or exc}") from exc
        if not chunk:
            return
        yield chunk


def _check_not_under_a_file(folder: Path) -> None:
    """Raise :class:`StoreUnavailable` when ``folder``, or the nearest of its parents that
    exists, is not a folder (``A3S_POWER_HOME`` naming a file): such a store is not an
    empty one, and should not list as one."""
    for path in (folder, *folder.parents):
        if path.exists():
            if not path.is_dir():
                raise StoreUnavailable(
                    f"the model store {folder} cannot be used: {path} is not a folder"
                )
            return


def _sorted_entries(
    folder: Path | str, *, dirs: bool, skip_unreadable: bool = False
) -> list[os.DirEntry[str]]:
    """The folders (or files) in ``folder`` by name, hidden ones left out; none if it is
    missing, not a folder or a symlink loop, or (``skip_unreadable``, with a warning) if
    it cannot be read. An entry that cannot be examined (a dangling or looping symlink) is
    left out, not the folder."""
    try:
        with os.scandir(folder) as entries:
            found = [e for e in entries if not e.name.startswith(".") and _is(e, dirs)]
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return []
        if skip_unreadable:
            log.warning("skipping %s: %s", folder, exc.strerror or exc)
            return []
        raise
    return sorted(found, key=lambda e: e.name)


def _is(entry: os.DirEntry[str], folder: bool) -> bool:
    try:
        return entry.is_dir() if folder else entry.is_file()
    except OSError:
        return False

"""The local store: verify-then-commit blobs, dedup, digest checks, manifests, gc, partials."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from power_core.errors import (
    BlobNotFound,
    DigestMismatch,
    InvalidDigest,
    InvalidModelFile,
    InvalidRequest,
    ModelNotFound,
    StoreUnavailable,
)
from power_core.names import ModelRef
from power_core.store import LocalStore, ModelStore
from power_core.store.manifest import (
    CONFIG_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    Layer,
    Manifest,
    layer_media_type,
)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_files(store: LocalStore) -> list[str]:
    return sorted(p.name for p in store.blobs_dir.iterdir()) if store.blobs_dir.exists() else []


def temp_files(store: LocalStore) -> list[Path]:
    return list(store.tmp_dir.iterdir()) if store.tmp_dir.exists() else []


def manifest_for(store: LocalStore, *payloads: bytes) -> Manifest:
    config = store.put_blob_bytes(b'{"model_format":"gguf"}')
    layers = []
    for payload in payloads:
        blob = store.put_blob_bytes(payload)
        layers.append(Layer(layer_media_type("model"), blob.digest, blob.size))
    return Manifest(config=Layer(CONFIG_MEDIA_TYPE, config.digest, config.size), layers=layers)


def test_local_store_satisfies_the_protocol(store: LocalStore) -> None:
    assert isinstance(store, ModelStore)


def test_put_bytes_is_content_addressed_and_deduplicated(store: LocalStore) -> None:
    first = store.put_blob_bytes(b"hello")
    second = store.put_blob_bytes(b"hello")
    assert first == second == (sha(b"hello"), 5)
    assert blob_files(store) == ["sha256-" + sha(b"hello")[7:]]
    assert store.blob_path(first.digest).read_bytes() == b"hello"
    assert store.has_blob(first.digest)
    assert store.has_blob("sha256-" + first.digest[7:])  # the on-disk spelling works too
    assert temp_files(store) == []


def test_put_stream_checks_digest_and_size_before_committing(store: LocalStore) -> None:
    chunks = [b"abc", b"", b"def"]
    blob = store.put_blob_stream(iter(chunks), expected_digest=sha(b"abcdef"), expected_size=6)
    assert blob == (sha(b"abcdef"), 6)
    with pytest.raises(DigestMismatch, match="expected sha256:"):
        store.put_blob_stream([b"tampered"], expected_digest=sha(b"original"))
    with pytest.raises(DigestMismatch, match="expected 9 bytes"):
        store.put_blob_stream([b"short"], expected_size=9)
    with pytest.raises(DigestMismatch, match="longer than the expected 2 bytes"):
        store.put_blob_stream([b"much too long"], expected_size=2)
    assert blob_files(store) == ["sha256-" + sha(b"abcdef")[7:]]
    assert temp_files(store) == []


def test_a_failing_stream_leaves_nothing(store: LocalStore) -> None:
    def chunks():
        yield b"partial data"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        store.put_blob_stream(chunks())
    assert blob_files(store) == []
    assert temp_files(store) == []


def test_put_stream_reports_progress(store: LocalStore) -> None:
    seen: list[int] = []
    store.put_blob_stream([b"ab", b"cd", b"e"], progress=seen.append)
    assert seen == [2, 4, 5]


def test_put_file_copies_and_verifies(store: LocalStore, tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    data = os.urandom(3 << 20)
    source.write_bytes(data)
    blob = store.put_blob_file(source, expected_digest=sha(data))
    assert blob == (sha(data), len(data))
    assert source.read_bytes() == data  # the source is left alone
    with pytest.raises(DigestMismatch):
        store.put_blob_file(source, expected_digest=sha(b"other"))
    with pytest.raises(InvalidRequest, match="file not found"):
        store.put_blob_file(tmp_path / "absent.bin")


@pytest.mark.parametrize(
    "digest",
    [
        "",
        "sha256:",
        "sha256:abc",
        "sha256:" + "A" * 64,
        "sha256:" + "g" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha512:" + "a" * 64,
        "sha256/" + "a" * 64,
        "sha256:../../etc/passwd",
        "../sha256-" + "a" * 64,
        "sha256-" + "a" * 64 + "/../x",
        "a" * 64,
    ],
)
def test_every_digest_is_validated(store: LocalStore, digest: str) -> None:
    with pytest.raises(InvalidDigest):
        store.has_blob(digest)
    with pytest.raises(InvalidDigest):
        store.blob_path(digest)
    with pytest.raises(InvalidDigest):
        store.put_blob_bytes(b"x", expected_digest=digest)
    with pytest.raises(InvalidDigest):
        store.gc([digest])
    assert blob_files(store) == []


def test_missing_blob(store: LocalStore) -> None:
    with pytest.raises(BlobNotFound):
        store.blob_path(sha(b"nothing"))
    assert not store.has_blob(sha(b"nothing"))


def test_manifest_round_trip_and_model_id(store: LocalStore) -> None:
    manifest = manifest_for(store, b"weights")
    ref = ModelRef.parse("tiny:1b")
    digest = store.write_manifest(ref, manifest)
    path = store.manifests_dir / "registry.ollama.ai" / "library" / "tiny" / "1b"
    raw = path.read_bytes()
    assert digest == hashlib.sha256(raw).hexdigest()
    data = json.loads(raw)
    assert data["schemaVersion"] == 2 and data["mediaType"] == MANIFEST_MEDIA_TYPE
    assert data["config"]["mediaType"] == CONFIG_MEDIA_TYPE
    assert data["layers"][0]["mediaType"] == "application/vnd.ollama.image.model"
    stored = store.read_manifest(ModelRef.parse("TINY:1B"))
    assert stored is not None
    assert stored.digest == digest and stored.manifest == manifest
    assert [s.ref for s in store.list_manifests()] == [ref]
    assert store.read_manifest(ModelRef.parse("other")) is None
    assert temp_files(store) == []


def test_a_rewritten_manifest_is_read_afresh(store: LocalStore) -> None:
    """Manifests read once are remembered, never past a change of the file."""
    ref = ModelRef.parse("tiny:1b")
    first = store.write_manifest(ref, manifest_for(store, b"weights one"))
    assert store.read_manifest(ref).digest == first  # type: ignore[union-attr]
    second = store.write_manifest(ref, manifest_for(store, b"weights two"))
    assert store.read_manifest(ref).digest == second  # type: ignore[union-attr]
    # rewritten in place by someone else: same inode, size and modification time
    other = ModelRef.parse("other:1b")
    third = store.write_manifest(other, manifest_for(store, b"weights six"))
    library = store.manifests_dir / "registry.ollama.ai" / "library"
    path = library / "tiny" / "1b"
    replacement = (library / "other" / "1b").read_bytes()
    assert len(replacement) == path.stat().st_size
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.write(replacement)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # the time put back, as cp -p
    assert store.read_manifest(ref).digest == third  # type: ignore[union-attr]
    path.unlink()
    assert store.read_manifest(ref) is None


def test_the_listing_follows_changes_made_by_another_process(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listings are polled while models run, so they read only manifests that changed; a
    second store on the same folder stands in for another process (a CLI pull or rm)."""
    other = LocalStore(store.root)
    tiny, small = ModelRef.parse("tiny:1b"), ModelRef.parse("small:2b")
    first = other.write_manifest(tiny, manifest_for(other, b"weights one"))
    assert {s.ref: s.digest for s in store.list_manifests()} == {tiny: first}
    second = other.write_manifest(small, manifest_for(other, b"weights two"))
    assert {s.ref: s.digest for s in store.list_manifests()} == {tiny: first, small: second}

    loads: list[ModelRef] = []
    load = store._load
    monkeypatch.setattr(store, "_load", lambda path, ref: loads.append(ref) or load(path, ref))
    assert len(store.list_manifests()) == 2 and loads == []  # nothing changed, nothing read

    # rewritten in place (same inode, size and modification time) by the other process
    path = store.manifests_dir.joinpath(*tiny.manifest_parts)
    replacement = store.manifests_dir.joinpath(*small.manifest_parts).read_bytes()
    assert len(replacement) == path.stat().st_size
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.write(replacement)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert {s.ref: s.digest for s in store.list_manifests()} == {tiny: second, small: second}
    assert loads == [tiny]

    other.delete_manifest(small)
    assert [s.ref for s in store.list_manifests()] == [tiny]


def test_manifest_refuses_missing_or_wrong_sized_blobs(store: LocalStore) -> None:
    manifest = manifest_for(store, b"weights")
    missing = Layer(layer_media_type("template"), sha(b"never stored"), 12)
    with pytest.raises(BlobNotFound):
        store.write_manifest(ModelRef.parse("x"), Manifest(manifest.config, [missing]))
    wrong = Layer(layer_media_type("model"), manifest.layers[0].digest, 999)
    with pytest.raises(InvalidModelFile, match="manifest says 999"):
        store.write_manifest(ModelRef.parse("x"), Manifest(manifest.config, [wrong]))
    assert store.list_manifests() == []


def test_delete_collects_only_unreferenced_blobs(
    store: LocalStore, check_store: Callable[[Path], None]
) -> None:
    shared = manifest_for(store, b"shared weights")
    store.write_manifest(ModelRef.parse("a"), shared)
    both = manifest_for(store, b"shared weights", b"only b")
    store.write_manifest(ModelRef.parse("b"), both)
    before = set(blob_files(store))

    removed = store.delete_manifest(ModelRef.parse("b"))
    assert removed == [sha(b"only b")]
    assert set(blob_files(store)) == before - {"sha256-" + sha(b"only b")[7:]}
    assert store.read_manifest(ModelRef.parse("b")) is None
    check_store(store.root)

    removed = store.delete_manifest(ModelRef.parse("a"))
    assert sorted(removed) == sorted(shared.digests)
    assert blob_files(store) == []
    # empty manifest folders are removed, the top folder stays
    assert list(store.manifests_dir.iterdir()) == []
    with pytest.raises(ModelNotFound):
        store.delete_manifest(ModelRef.parse("a"))


def test_gc_keeps_fresh_orphans_and_removes_stale_ones(store: LocalStore, tmp_path: Path) -> None:
    kept = manifest_for(store, b"in use")
    store.write_manifest(ModelRef.parse("kept"), kept)
    orphan = store.put_blob_bytes(b"uploaded, not yet used by a create")
    assert store.gc() == []  # fresh: a create may be about to reference it
    assert store.has_blob(orphan.digest)

    patient = LocalStore(store.root, stale_seconds=0)
    assert patient.gc() == [orphan.digest]
    for digest in kept.digests:
        assert store.has_blob(digest)  # referenced blobs are never collected
    assert store.gc(kept.digests) == []


def test_gc_removes_nothing_when_a_manifest_is_unreadable(store: LocalStore) -> None:
    store.write_manifest(ModelRef.parse("good"), manifest_for(store, b"weights"))
    orphan = store.put_blob_bytes(b"orphan")
    broken = store.manifests_dir / "registry.ollama.ai" / "library" / "broken" / "latest"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    assert LocalStore(store.root, stale_seconds=0).gc([orphan.digest]) == []
    assert store.has_blob(orphan.digest)
    # the damaged manifest is skipped by list, and reading it says why
    assert [s.ref.model for s in store.list_manifests()] == ["good"]
    with pytest.raises(InvalidModelFile, match="not valid JSON"):
        store.read_manifest(ModelRef.parse("broken"))


def test_foreign_files_in_blobs_are_left_alone(store: LocalStore) -> None:
    store.blobs_dir.mkdir(parents=True)
    ollama_partial = store.blobs_dir / ("sha256-" + "a" * 64 + "-partial")
    ollama_partial.write_bytes(b"ollama's own download")
    assert LocalStore(store.root, stale_seconds=0).gc() == []
    assert ollama_partial.exists()


def test_case_insensitive_lookup_of_ollama_folders(store: LocalStore) -> None:
    manifest = manifest_for(store, b"weights")
    folder = store.manifests_dir / "registry.ollama.ai" / "Someone" / "Mistral"
    folder.mkdir(parents=True)
    (folder / "Latest").write_bytes(manifest.to_bytes())
    stored = store.read_manifest(ModelRef.parse("someone/mistral"))
    assert stored is not None and stored.ref.display == "someone/mistral:latest"
    assert [s.ref.display for s in store.list_manifests()] == ["someone/mistral:latest"]
    # rewriting keeps the existing file instead of making a second spelling
    store.write_manifest(ModelRef.parse("SOMEONE/MISTRAL"), manifest)
    assert [p.name for p in folder.iterdir()] == ["Latest"]
    store.delete_manifest(ModelRef.parse("someone/mistral:latest"))
    assert not (store.manifests_dir / "registry.ollama.ai" / "Someone").exists()


def test_odd_names_in_the_manifest_tree_are_skipped(store: LocalStore) -> None:
    manifest = manifest_for(store, b"weights")
    odd = store.manifests_dir / "registry.ollama.ai" / "library" / "bad name" / "latest"
    odd.parent.mkdir(parents=True)
    odd.write_bytes(manifest.to_bytes())
    assert store.list_manifests() == []


def test_broken_links_in_the_manifest_tree_hide_nothing_else(store: LocalStore) -> None:
    good = ModelRef.parse("tiny:1b")
    store.write_manifest(good, manifest_for(store, b"weights"))
    library = store.manifests_dir / "registry.ollama.ai" / "library"
    (library / "dangling").symlink_to(store.root / "nowhere" / "at-all")
    (library / "through-a-file").symlink_to(library / "tiny" / "1b" / "below")
    (library / "tiny" / "loop").symlink_to(library / "tiny" / "loop")
    (store.manifests_dir / "looping-host").symlink_to(store.manifests_dir / "looping-host")
    assert [s.ref for s in store.list_manifests()] == [good]


def test_partial_downloads_live_outside_blobs(store: LocalStore) -> None:
    key = "ab" * 20
    with store.partial_download(key) as partial:
        assert partial.size() == 0 and partial.read_state() == {}
        partial.write_state({"url": "http://x/y.gguf", "validator": '"v1"'})
        with open(partial.path, "ab") as handle:
            handle.write(b"some bytes")
        assert partial.size() == 10
    assert blob_files(store) == []
    with store.partial_download(key) as partial:
        assert partial.read_state()["url"] == "http://x/y.gguf"
        with pytest.raises(DigestMismatch):
            store.commit_partial(partial, digest=sha(b"some bytes"), size=11)
        blob = store.commit_partial(partial, digest=sha(b"some bytes"), size=10)
        assert blob == (sha(b"some bytes"), 10)
        assert partial.size() == 0 and partial.read_state() == {}
    assert store.blob_path(blob.digest).read_bytes() == b"some bytes"
    with store.partial_download(key) as partial:
        partial.write_state({"url": "u"})
        partial.discard()
        assert partial.read_state() == {}
    # nothing is kept, so neither is the lock that made downloaders of it wait
    assert list(store.partial_dir.iterdir()) == []


def test_a_download_waiting_on_a_removed_lock_still_excludes_the_next(store: LocalStore) -> None:
    key = "ef" * 20
    first_in, second_in, let_second_go = threading.Event(), threading.Event(), threading.Event()
    let_first_go, third_in = threading.Event(), threading.Event()

    def first() -> None:
        with store.partial_download(key):
            first_in.set()
            let_first_go.wait(10)  # leaves nothing: the lock file goes as it lets go

    def second() -> None:
        with store.partial_download(key):
            second_in.set()
            let_second_go.wait(10)

    def third() -> None:
        with store.partial_download(key):
            third_in.set()

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert first_in.wait(10)
    threads.append(threading.Thread(target=second))
    threads[1].start()
    time.sleep(0.2)  # the second has opened the lock file and waits on it
    let_first_go.set()
    assert second_in.wait(10)
    threads.append(threading.Thread(target=third))
    threads[2].start()
    # the second won the lock of a file no longer there; it must hold the new one
    assert not third_in.wait(0.5)
    let_second_go.set()
    assert third_in.wait(10)
    for thread in threads:
        thread.join(10)
    assert list(store.partial_dir.iterdir()) == []


@pytest.mark.parametrize("key", ["", "short", "../../etc", "G" * 40, "a" * 65])
def test_partial_keys_are_validated(store: LocalStore, key: str) -> None:
    with pytest.raises(InvalidRequest), store.partial_download(key):
        pass


def test_torn_partial_state_means_restart(store: LocalStore) -> None:
    key = "cd" * 20
    store.partial_dir.mkdir(parents=True)
    (store.partial_dir / f"{key}.json").write_text('{"url": "http://x", "valid')
    with store.partial_download(key) as partial:
        assert partial.read_state() == {}


def test_a_model_folder_that_cannot_be_read_hides_only_itself(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(chmod 000 does not stop root, who runs these tests: the refusal is the OS's, as a
    non-root user meets it.)"""
    good, hidden = ModelRef.parse("tiny:1b"), ModelRef.parse("other:1b")
    store.write_manifest(good, manifest_for(store, b"weights"))
    store.write_manifest(hidden, manifest_for(store, b"others"))
    unreadable = str(store.manifests_dir / "registry.ollama.ai" / "library" / "other")
    scandir = os.scandir

    def refusing(path: Any) -> Any:
        if str(path) == unreadable:
            raise PermissionError(13, "Permission denied", unreadable)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    assert [s.ref for s in store.list_manifests()] == [good]


def test_a_store_under_a_file_is_no_empty_store(tmp_path: Path) -> None:
    home = tmp_path / "a-file"
    home.write_text("not a folder")
    with pytest.raises(StoreUnavailable, match="is not a folder"):
        LocalStore(home / "models").list_manifests()
    assert LocalStore(tmp_path / "absent" / "models").list_manifests() == []  # a new store


def test_a_folder_where_a_blob_should_be_does_not_fail_a_delete(store: LocalStore) -> None:
    ref = ModelRef.parse("tiny:1b")
    manifest = manifest_for(store, b"weights")
    store.write_manifest(ref, manifest)
    weights = store.blob_path(manifest.layers[0].digest)
    weights.unlink()
    weights.mkdir()  # a hand-damaged store
    store.delete_manifest(ref)  # the manifest and every other blob go; no error
    assert store.list_manifests() == []
    assert not store.has_blob(manifest.config.digest)

"""Models split into GGUF parts come into the store joined: pulled by the first part's URL
(every part downloaded, then joined, the parts dropped), created from the first part's path
or its folder, or from every part uploaded as blobs."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from power_core.errors import InvalidRequest, PullFailed, UnsupportedFeature
from power_core.library import ModelLibrary
from power_core.names import ModelRef
from power_core.sources import PullProgress
from power_core.store.local import LocalStore
from split_files import write_tiny_model


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def split(tmp_path: Path) -> tuple[bytes, list[Path]]:
    """A tiny model's whole file, and the same model in 3 parts."""
    folder = tmp_path / "split"
    folder.mkdir()
    write_tiny_model(tmp_path / "whole.gguf")
    write_tiny_model(folder / "Tiny-Model.Q8_0.gguf", split_max_tensors=2)
    return (tmp_path / "whole.gguf").read_bytes(), sorted(folder.glob("*-of-*.gguf"))


def stored_blobs(store: LocalStore) -> set[str]:
    return {"sha256:" + p.name[7:] for p in store.blobs_dir.iterdir()}


def serve(file_server, parts: list[Path], query: str = "") -> list[str]:
    for part in parts:
        file_server.add(f"/models/{part.name}{query}", part.read_bytes())
    return [file_server.url(f"/models/{part.name}{query}") for part in parts]


def test_pulling_the_first_part_joins_every_part(
    library: ModelLibrary, file_server, split: tuple[bytes, list[Path]], check_store
) -> None:
    whole, parts = split
    urls = serve(file_server, parts, "?download=true")
    events: list[PullProgress] = []
    name = library.pull(urls[0], progress=events.append)
    assert name == "tiny-model:q8_0"  # the whole model's name, not the first part's
    assert library.resolve(name).model_digest == sha(whole)
    store: LocalStore = library.store  # type: ignore[assignment]
    manifest = library.store.read_manifest(ModelRef.parse(name))
    assert manifest is not None
    assert stored_blobs(store) == set(manifest.manifest.digests)  # the parts are gone
    assert [path for path, _, _ in file_server.requests] == [
        f"/models/{part.name}?download=true" for part in parts
    ]
    assert file_server.heads == []  # each part's ETag is the one its download came with
    statuses = [e.status for e in events]
    for part in parts:
        assert f"pulling {part.name}" in statuses
    joining = [e for e in events if e.status == "joining 3 parts"]
    assert joining and joining[-1].completed == joining[-1].total
    assert statuses.index("joining 3 parts") < statuses.index("writing manifest")
    assert statuses[-1] == "success"
    check_store(store.root)


def test_a_later_part_or_a_digest_is_refused_before_the_rest_is_fetched(
    library: ModelLibrary, file_server, split: tuple[bytes, list[Path]]
) -> None:
    _, parts = split
    urls = serve(file_server, parts)
    with pytest.raises(InvalidRequest, match=r"part 2 of 3 .*give the first part"):
        library.pull(urls[1])
    first = sha(parts[0].read_bytes())
    with pytest.raises(InvalidRequest, match="a digest names one file"):
        library.pull(urls[0], expected_digest=first)
    assert [path for path, _, _ in file_server.requests] == [
        f"/models/{parts[1].name}",
        f"/models/{parts[0].name}",
    ]
    assert library.list_models() == []


def test_a_pull_that_stopped_resumes_without_the_parts_it_finished(
    library: ModelLibrary, file_server, split: tuple[bytes, list[Path]], check_store
) -> None:
    whole, parts = split
    urls = serve(file_server, parts[:2])
    with pytest.raises(PullFailed, match=r"-00003-of-00003\.gguf: HTTP 404"):
        library.pull(urls[0])
    assert library.list_models() == []
    store: LocalStore = library.store  # type: ignore[assignment]
    assert len(stored_blobs(store)) == 2  # kept for the next pull
    check_store(store.root)

    serve(file_server, parts[2:])
    before = len(file_server.requests)
    assert library.pull(urls[0]) == "tiny-model:q8_0"
    # asked whether parts 1 and 2 are still the same files; downloaded only part 3
    assert [path for path, _, _ in file_server.requests[before:]] == [f"/models/{parts[2].name}"]
    assert f"/models/{parts[0].name}" in file_server.heads
    assert library.resolve("tiny-model:q8_0").model_digest == sha(whole)
    manifest = store.read_manifest(ModelRef.parse("tiny-model:q8_0"))
    assert manifest is not None and stored_blobs(store) == set(manifest.manifest.digests)
    assert list(store.partial_dir.glob("*.json")) == []  # the note went with the parts
    check_store(store.root)


def test_a_new_version_on_the_server_is_downloaded_whole(
    library: ModelLibrary, file_server, split: tuple[bytes, list[Path]], tmp_path: Path
) -> None:
    _, parts = split
    urls = serve(file_server, parts[:2])
    with pytest.raises(PullFailed, match="HTTP 404"):
        library.pull(urls[0])
    # a new version of the model, with new ETags, replaces the files on the server
    newer = tmp_path / "newer"
    newer.mkdir()
    write_tiny_model(newer / "Tiny-Model.Q8_0.gguf", split_max_tensors=2, context_length=128)
    write_tiny_model(tmp_path / "newer-whole.gguf", context_length=128)
    for part in sorted(newer.glob("*-of-*.gguf")):
        file_server.add(f"/models/{part.name}", part.read_bytes(), etag='"v2"')
    before = len(file_server.requests)
    library.pull(urls[0])
    fetched = [path for path, _, _ in file_server.requests[before:]]
    assert fetched == [f"/models/{part.name}" for part in parts]  # nothing old reused
    newer_whole = (tmp_path / "newer-whole.gguf").read_bytes()
    assert library.resolve("tiny-model:q8_0").model_digest == sha(newer_whole)
    store: LocalStore = library.store  # type: ignore[assignment]
    manifest = store.read_manifest(ModelRef.parse("tiny-model:q8_0"))
    assert manifest is not None and stored_blobs(store) == set(manifest.manifest.digests)


def test_only_the_parts_still_the_same_are_kept(
    library: ModelLibrary, file_server, split: tuple[bytes, list[Path]]
) -> None:
    whole, parts = split
    urls = serve(file_server, parts[:2])
    with pytest.raises(PullFailed, match="HTTP 404"):
        library.pull(urls[0])
    file_server.files[f"/models/{parts[1].name}"].etag = '"v2"'  # the server says it changed
    serve(file_server, parts[2:])
    before = len(file_server.requests)
    library.pull(urls[0])
    fetched = [path for path, _, _ in file_server.requests[before:]]
    assert fetched == [f"/models/{parts[1].name}", f"/models/{parts[2].name}"]
    assert library.resolve("tiny-model:q8_0").model_digest == sha(whole)


def test_a_part_of_another_model_is_refused(
    library: ModelLibrary, file_server, split: tuple[bytes, list[Path]], tmp_path: Path
) -> None:
    _, parts = split
    write_tiny_model(tmp_path / "other.gguf", split_max_tensors=3)  # 2 parts
    other = sorted(tmp_path.glob("other-*-of-*.gguf"))
    urls = serve(file_server, parts)
    file_server.add(f"/models/{parts[1].name}", other[1].read_bytes())
    with pytest.raises(InvalidRequest, match=r"should be part 2 of 3 .* part 2 of 2"):
        library.pull(urls[0])
    assert library.list_models() == []


def test_creating_from_the_first_parts_path_or_its_folder(
    library: ModelLibrary, split: tuple[bytes, list[Path]], check_store
) -> None:
    whole, parts = split
    events: list[PullProgress] = []
    library.create_from_modelfile("from-path", f"FROM {parts[0]}\n", parts[0].parent, events.append)
    assert library.resolve("from-path").model_digest == sha(whole)
    statuses = [e.status for e in events]
    assert "joining 3 parts" in statuses
    assert f"creating new layer {sha(whole)}" in statuses
    library.create_from_modelfile("from-folder", "FROM .\n", parts[0].parent)
    assert library.resolve("from-folder").model_digest == sha(whole)
    with pytest.raises(InvalidRequest, match=r"part 3 of 3 .*give the first part"):
        library.create_from_modelfile("later", f"FROM {parts[2]}\n", parts[0].parent)
    parts[1].unlink()
    with pytest.raises(InvalidRequest, match=r"part 2 of 3 of the split model is missing"):
        library.create_from_modelfile("missing", f"FROM {parts[0]}\n", parts[0].parent)
    check_store(library.store.root)


def test_creating_from_every_part_uploaded(
    library: ModelLibrary, split: tuple[bytes, list[Path]], check_store
) -> None:
    whole, parts = split
    digests = {part.name: library.store.put_blob_file(part).digest for part in parts}
    # in any order: the parts say which they are
    files = dict(reversed(list(digests.items())))
    library.create("uploaded", files=files)
    assert library.resolve("uploaded").model_digest == sha(whole)
    store: LocalStore = library.store  # type: ignore[assignment]
    assert stored_blobs(store) == set(
        store.read_manifest(ModelRef.parse("uploaded")).manifest.digests  # type: ignore[union-attr]
    )  # the parts went into the model, joined
    digests = {part.name: library.store.put_blob_file(part).digest for part in parts}
    with pytest.raises(InvalidRequest, match=r"is part 1 of 3 of a split GGUF model"):
        library.create("first-only", files={parts[0].name: digests[parts[0].name]})
    two = {name: digests[name] for name in list(digests)[:2]}
    with pytest.raises(UnsupportedFeature, match="every part of one split model"):
        library.create("two-of-three", files=two)
    assert library.list_models()[0].name == "uploaded:latest"
    check_store(library.store.root)


def test_a_refused_create_leaves_no_joined_blob(
    library: ModelLibrary, split: tuple[bytes, list[Path]], tmp_path: Path
) -> None:
    _, parts = split
    # a model given as an adapter: refused once the weights' header is read, after joining
    modelfile = f"FROM {parts[0]}\nADAPTER {tmp_path / 'whole.gguf'}\n"
    events: list[PullProgress] = []
    with pytest.raises(InvalidRequest, match="adapter"):
        library.create_from_modelfile("refused", modelfile, parts[0].parent, events.append)
    assert "joining 3 parts" in [e.status for e in events]
    store: LocalStore = library.store  # type: ignore[assignment]
    assert not store.blobs_dir.exists() or stored_blobs(store) == set()


def _pull_in_background(library: ModelLibrary, url: str) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(library.pull(url))
        except Exception as exc:  # handed to the test, which shows it
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _await_get(file_server, path: str) -> None:
    deadline = time.monotonic() + 30
    while not any(p == path for p, _, _ in file_server.requests):
        assert time.monotonic() < deadline, f"no GET {path}"
        time.sleep(0.01)


def test_a_pull_finishing_keeps_the_parts_another_pull_holds(
    library: ModelLibrary, file_server, split: tuple[bytes, list[Path]]
) -> None:
    # two clients pull one split model by URLs that differ in their query: the same parts
    whole, parts = split
    gate = threading.Event()
    for query in ("?a", "?b"):
        for part in parts:
            held = (query, part) == ("?b", parts[2])
            options = {"gate": gate, "gate_after": 0} if held else {}
            file_server.add(f"/models/{part.name}{query}", part.read_bytes(), **options)
    thread, outcome = _pull_in_background(library, file_server.url(f"/models/{parts[0].name}?b"))
    _await_get(file_server, f"/models/{parts[2].name}?b")  # it holds parts 1 and 2
    library.pull(file_server.url(f"/models/{parts[0].name}?a"), name="first")  # drops its parts
    gate.set()
    thread.join(30)
    assert outcome == ["tiny-model:q8_0"], outcome
    assert library.resolve("tiny-model:q8_0").model_digest == sha(whole)


def test_a_long_pull_keeps_its_parts_through_a_collection(
    library: ModelLibrary, file_server, split: tuple[bytes, list[Path]], tiny_gguf: Path
) -> None:
    whole, parts = split
    store: LocalStore = library.store  # type: ignore[assignment]
    library.import_gguf(tiny_gguf, "other")
    gate = threading.Event()
    for part in parts:
        options = {"gate": gate, "gate_after": 0} if part == parts[2] else {}
        file_server.add(f"/models/{part.name}", part.read_bytes(), **options)
    thread, outcome = _pull_in_background(library, file_server.url(f"/models/{parts[0].name}"))
    _await_get(file_server, f"/models/{parts[2].name}")
    hours_ago = time.time() - 2 * store.stale_seconds  # parts 1 and 2 finished long ago
    for blob in store.blobs_dir.iterdir():
        os.utime(blob, (hours_ago, hours_ago))
    library.delete("other")  # a collection: stale blobs no model references go
    gate.set()
    thread.join(30)
    assert outcome == ["tiny-model:q8_0"], outcome
    assert library.resolve("tiny-model:q8_0").model_digest == sha(whole)


def test_a_refused_split_leaves_nothing_downloaded(
    library: ModelLibrary, file_server, split: tuple[bytes, list[Path]]
) -> None:
    _, parts = split
    file_server.add("/renamed.gguf", parts[0].read_bytes())  # no -00001-of-00003 in its name
    with pytest.raises(InvalidRequest, match="does not end in -00001-of-00003"):
        library.pull(file_server.url("/renamed.gguf"))
    urls = serve(file_server, parts)
    with pytest.raises(InvalidRequest, match="part 2 of 3"):
        library.pull(urls[1])
    with pytest.raises(InvalidRequest, match="a digest names one file"):
        library.pull(urls[0], expected_digest=sha(parts[0].read_bytes()))
    store: LocalStore = library.store  # type: ignore[assignment]
    assert not store.blobs_dir.exists() or stored_blobs(store) == set()

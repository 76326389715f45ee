"""Pulling GGUF files over real HTTP from a local server: resume, restart, errors, sharing."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from power_core.errors import (
    DigestMismatch,
    InvalidModelName,
    InvalidRequest,
    PullFailed,
)
from power_core.library import ModelLibrary
from power_core.names import ModelRef
from power_core.sources import PullProgress
from power_core.store.local import LocalStore

MIB = 1 << 20


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def big_gguf(make_gguf: Callable[..., Path]) -> bytes:
    """About 3 MiB: several 1 MiB download chunks."""
    return make_gguf("big.gguf", tensors={"token_embd.weight": (768, 1024)}).read_bytes()


def blobs(store: LocalStore) -> list[Path]:
    return list(store.blobs_dir.iterdir()) if store.blobs_dir.exists() else []


def part_files(store: LocalStore) -> list[Path]:
    if not store.partial_dir.exists():
        return []
    return [p for p in store.partial_dir.iterdir() if p.suffix in {".part", ".json"}]


def test_pull_names_the_model_after_the_file(
    library: ModelLibrary, file_server, tiny_gguf: Path, check_store
) -> None:
    data = tiny_gguf.read_bytes()
    file_server.add("/files/Tiny-Model.Q4_K_M.gguf", data)
    events: list[PullProgress] = []
    name = library.pull(file_server.url("/files/Tiny-Model.Q4_K_M.gguf"), progress=events.append)
    assert name == "tiny-model:q4_k_m"
    statuses = [e.status for e in events]
    assert statuses[0] == "pulling manifest"
    assert statuses[1] == "pulling Tiny-Model.Q4_K_M.gguf"
    download = [e for e in events if e.status == "pulling Tiny-Model.Q4_K_M.gguf"]
    assert download[-1].completed == download[-1].total == len(data)
    assert statuses.index("verifying sha256 digest") < statuses.index("writing manifest")
    assert statuses[-1] == "success"
    model = library.resolve(name)
    assert model.model_digest == sha(data)
    assert part_files(library.store) == []  # type: ignore[arg-type]
    check_store(library.store.root)


def test_pull_with_a_name_and_the_right_digest(
    library: ModelLibrary, file_server, tiny_gguf: Path
) -> None:
    data = tiny_gguf.read_bytes()
    file_server.add("/m.gguf", data)
    events: list[PullProgress] = []
    name = library.pull(
        file_server.url("/m.gguf"),
        name="Me/Tiny:v1",
        expected_digest=sha(data),
        progress=events.append,
    )
    assert name == "me/tiny:v1"
    digest12 = sha(data)[7:19]
    assert any(e.status == f"pulling {digest12}" and e.digest == sha(data) for e in events)
    # pulling again with a known digest does not download again
    requests_before = len(file_server.requests)
    assert library.pull(file_server.url("/m.gguf"), name="again", expected_digest=sha(data))
    assert len(file_server.requests) == requests_before


def test_a_wrong_digest_stores_nothing(library: ModelLibrary, file_server, tiny_gguf: Path) -> None:
    file_server.add("/m.gguf", tiny_gguf.read_bytes())
    with pytest.raises(DigestMismatch, match="expected sha256:"):
        library.pull(file_server.url("/m.gguf"), expected_digest=sha(b"something else"))
    assert blobs(library.store) == []  # type: ignore[arg-type]
    assert library.list_models() == []
    assert part_files(library.store) == []  # type: ignore[arg-type]


def test_http_errors_are_clean(library: ModelLibrary, file_server) -> None:
    with pytest.raises(PullFailed, match="HTTP 404"):
        library.pull(file_server.url("/missing.gguf"))
    with pytest.raises(PullFailed, match="cannot download"):
        library.pull("http://127.0.0.1:1/nothing-listens-here.gguf")
    assert library.list_models() == [] and blobs(library.store) == []  # type: ignore[arg-type]


def test_content_that_is_not_gguf_is_refused(library: ModelLibrary, file_server) -> None:
    page = b"<!DOCTYPE html><html>" + b"x" * (3 * MIB)
    file_server.add("/page.gguf", page, content_type="text/html")
    with pytest.raises(PullFailed, match=r"not a GGUF file .*text/html"):
        library.pull(file_server.url("/page.gguf"))
    file_server.add("/tiny.gguf", b"GGUF")
    with pytest.raises(PullFailed, match="not a GGUF file"):
        library.pull(file_server.url("/tiny.gguf"))
    assert blobs(library.store) == [] and part_files(library.store) == []  # type: ignore[arg-type]


def test_a_truncated_gguf_is_refused(library: ModelLibrary, file_server, big_gguf: bytes) -> None:
    file_server.add("/cut.gguf", big_gguf[: len(big_gguf) // 2])
    with pytest.raises(PullFailed, match=r"not a usable GGUF model: .*beyond the end"):
        library.pull(file_server.url("/cut.gguf"))
    assert blobs(library.store) == [] and part_files(library.store) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "encoding", [{"gzip": True}, {"chunked": True}, {"gzip": True, "chunked": True}]
)
def test_compressed_and_chunked_bodies_are_stored_as_the_file(
    library: ModelLibrary, file_server, big_gguf: bytes, encoding: dict[str, bool], check_store
) -> None:
    # a server may compress despite "Accept-Encoding: identity", or send no length
    file_server.add("/encoded.gguf", big_gguf, **encoding)
    library.pull(file_server.url("/encoded.gguf"), name="encoded")
    stored = library.store.read_manifest(ModelRef.parse("encoded"))
    assert stored is not None
    weights = stored.manifest.layer("model")
    assert weights is not None and weights.digest == sha(big_gguf)
    assert library.store.blob_path(weights.digest).read_bytes() == big_gguf
    check_store(library.store.root)


def test_an_interrupted_download_resumes_with_range(
    library: ModelLibrary, file_server, big_gguf: bytes, check_store
) -> None:
    file_server.add("/big.gguf", big_gguf, drop_after=MIB + MIB // 2, drops=1)
    url = file_server.url("/big.gguf")
    with pytest.raises(PullFailed, match=r"interrupted .* pull again to resume"):
        library.pull(url, name="big")
    kept = [p for p in part_files(library.store) if p.suffix == ".part"]  # type: ignore[arg-type]
    assert len(kept) == 1 and 0 < kept[0].stat().st_size < len(big_gguf)
    resumed_from = kept[0].stat().st_size
    assert library.list_models() == [] and blobs(library.store) == []  # type: ignore[arg-type]

    assert library.pull(url, name="big") == "big:latest"
    (first, _), (second, status) = file_server.gets("/big.gguf")
    assert "Range" not in first
    assert second["Range"] == f"bytes={resumed_from}-" and second["If-Range"] == '"v1"'
    assert status == 206
    assert library.resolve("big").model_digest == sha(big_gguf)
    assert list(library.store.partial_dir.iterdir()) == []  # type: ignore[attr-defined]
    check_store(library.store.root)


def test_a_delete_during_a_pull_that_reuses_its_blob_fetches_it_again(
    library: ModelLibrary, file_server, tiny_gguf: Path, check_store
) -> None:
    data = tiny_gguf.read_bytes()
    file_server.add("/m.gguf", data)
    url = file_server.url("/m.gguf")
    library.pull(url, name="old", expected_digest=sha(data))
    downloads = len(file_server.gets("/m.gguf"))

    def delete_old_once_the_blob_is_reused(event: PullProgress) -> None:
        if event.status == "verifying sha256 digest" and library.list_models():
            library.delete("old")  # takes the blob the pull just found

    name = library.pull(
        url, name="new", expected_digest=sha(data), progress=delete_old_once_the_blob_is_reused
    )
    assert name == "new:latest"
    assert [m.name for m in library.list_models()] == ["new:latest"]
    assert library.resolve("new").model_path.read_bytes() == data
    assert len(file_server.gets("/m.gguf")) == downloads + 1
    check_store(library.store.root)


def test_a_server_that_ignores_range_gets_a_clean_restart(
    library: ModelLibrary, file_server, big_gguf: bytes
) -> None:
    file_server.add("/big.gguf", big_gguf, ranges=False, drop_after=MIB + 10, drops=1)
    url = file_server.url("/big.gguf")
    with pytest.raises(PullFailed):
        library.pull(url)
    library.pull(url, name="big")
    assert [status for _, status in file_server.gets("/big.gguf")] == [200, 200]
    assert library.resolve("big").model_digest == sha(big_gguf)


@pytest.mark.parametrize(
    ("ignores_if_range", "statuses"),
    [
        (False, [200, 200]),  # If-Range did not match: the whole new file came
        # a server that ignores If-Range sends the new version's tail with its new ETag: the
        # pull starts over rather than stitch it on
        (True, [200, 206, 200]),
    ],
)
def test_a_changed_file_is_never_spliced_onto_the_old_one(
    library: ModelLibrary,
    file_server,
    big_gguf: bytes,
    make_gguf: Callable[..., Path],
    ignores_if_range: bool,
    statuses: list[int],
) -> None:
    file_server.add("/m.gguf", big_gguf, drop_after=MIB + 10, drops=1)
    url = file_server.url("/m.gguf")
    with pytest.raises(PullFailed):
        library.pull(url)
    newer = make_gguf("newer.gguf", tensors={"token_embd.weight": (700, 1024)}).read_bytes()
    file_server.add("/m.gguf", newer, etag='"v2"', ignores_if_range=ignores_if_range)
    library.pull(url, name="m")
    assert [status for _, status in file_server.gets("/m.gguf")] == statuses
    assert library.resolve("m").model_digest == sha(newer)


def test_a_range_sent_without_its_etag_keeps_the_validator_for_the_next_resume(
    library: ModelLibrary, file_server, big_gguf: bytes
) -> None:
    file_server.add("/m.gguf", big_gguf, drop_after=MIB + 10, drops=2, etag_on_partial=False)
    url = file_server.url("/m.gguf")
    for _ in range(2):
        with pytest.raises(PullFailed):
            library.pull(url)
    library.pull(url, name="m")
    gets = file_server.gets("/m.gguf")
    assert [status for _, status in gets] == [200, 206, 206]
    assert gets[2][0]["If-Range"] == '"v1"'
    assert library.resolve("m").model_digest == sha(big_gguf)


def test_a_redirect_to_an_address_urllib_cannot_parse_is_a_failed_pull(
    library: ModelLibrary, file_server
) -> None:
    file_server.add("/r.gguf", b"", redirect_to="http://[::zz/x.gguf")
    with pytest.raises(PullFailed, match="Invalid IPv6 URL"):
        library.pull(file_server.url("/r.gguf"))
    assert library.list_models() == []


def test_concurrent_pulls_of_one_url_share_one_download(
    library: ModelLibrary, file_server, big_gguf: bytes
) -> None:
    # The server holds the rest of the file back until the second pull has joined.
    gate = threading.Event()
    file_server.add("/slow.gguf", big_gguf, gate=gate, gate_after=MIB + MIB // 2)
    url = file_server.url("/slow.gguf")
    results: dict[str, str] = {}
    events: dict[str, list[PullProgress]] = {"a": [], "b": []}
    errors: list[BaseException] = []
    first_progress = threading.Event()

    def pull(key: str) -> None:
        def progress(event: PullProgress) -> None:
            events[key].append(event)
            if event.completed:
                # a: its download is under way; b: it joined and got the latest report
                (first_progress if key == "a" else gate).set()

        try:
            results[key] = library.pull(url, name=key, progress=progress)
        except BaseException as exc:
            errors.append(exc)

    a = threading.Thread(target=pull, args=("a",))
    a.start()
    assert first_progress.wait(30)  # the first download is under way
    b = threading.Thread(target=pull, args=("b",))
    b.start()
    a.join(60)
    b.join(60)
    assert errors == []
    assert results == {"a": "a:latest", "b": "b:latest"}
    assert len(file_server.gets("/slow.gguf")) == 1
    assert any(e.completed for e in events["b"])  # b saw the shared download's progress
    assert events["b"][-1].status == "success"
    assert library.resolve("a").model_digest == library.resolve("b").model_digest


def test_references_no_source_handles(library: ModelLibrary, file_server) -> None:
    # this library has only the url source: names need the registry source
    with pytest.raises(InvalidRequest, match="no model source"):
        library.pull("smollm2:135m")
    with pytest.raises(InvalidRequest, match="no model source"):
        library.pull("ftp://example.com/x.gguf")
    with pytest.raises(InvalidRequest, match="empty"):
        library.pull("  ")
    with pytest.raises(InvalidModelName) as caught:
        library.pull("bad name")
    assert caught.value.message.startswith("invalid model name 'bad name': model 'bad name' ")
    with pytest.raises(InvalidModelName):
        library.pull(file_server.url("/m.gguf"), name="../escape")
    assert file_server.requests == []


def test_a_full_disk_is_a_clear_error(library: ModelLibrary, file_server, tiny_gguf: Path) -> None:
    file_server.add("/m.gguf", tiny_gguf.read_bytes())
    url = file_server.url("/m.gguf")
    store: LocalStore = library.store  # type: ignore[assignment]
    key = hashlib.sha256(url.encode()).hexdigest()[:40]
    store.partial_dir.mkdir(parents=True)
    # The kernel's /dev/full answers every write with ENOSPC.
    (store.partial_dir / f"{key}.part").symlink_to("/dev/full")
    (store.partial_dir / f"{key}.json").write_text(
        json.dumps({"url": url, "validator": '"v1"', "total": None})
    )
    with pytest.raises(PullFailed, match="not enough disk space"):
        library.pull(url)
    assert blobs(store) == [] and library.list_models() == []

"""A split model pulled by its first part's URL: every part downloaded, then joined.

The first part comes as any URL does (only its header says it is part 1 of N); the others
by the same URL with the part's number in the file name. Each part is a resumable download
of its own, and a note kept with the store's partial downloads remembers the parts already
finished, with what identifies each file on the server (its ETag, else Last-Modified): a
pull that stopped in part 3 of 5 downloads neither part 1 nor part 2 again while the server
still has those very files (a ``HEAD`` asks). A new first part starts everything over; a
server that names no validator gets every part downloaded again. Once the parts are joined
(:mod:`power_core.split_joining`), the parts and the note go.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from power_core.errors import DigestMismatch, InvalidRequest, PullFailed
from power_core.gguf import read_gguf_info
from power_core.pull.naming import file_label, suggest_model_name
from power_core.sources import FetchedBlob, ProgressCallback
from power_core.split_joining import join_into_store
from power_core.split_models import (
    SplitPart,
    looks_like_first_part,
    part_names,
    read_parts,
    refuse_later_part,
    whole_model_name,
)
from power_core.store.base import ModelStore, PartialDownload, StoredBlob
from power_core.store.pins import pinning

if TYPE_CHECKING:
    from power_core.pull.url import UrlSource


def reusable_part(
    source: UrlSource, store: ModelStore, first_url: str, url: str, insecure: bool
) -> str | None:
    """The digest of the part at ``url`` that an earlier pull of the split model at
    ``first_url`` finished, if the server still has that very file (the same ETag or
    Last-Modified); else ``None``. Only a URL named as a first part is looked up: an
    ordinary pull takes no lock for it."""
    if not looks_like_first_part(urlsplit(first_url).path):
        return None
    with store.partial_download(_note_key(first_url)) as note:
        finished = _finished(note, first_url)
    return _unchanged(source, finished.get(url), url, insecure)


def fetch_split(
    source: UrlSource,
    url: str,
    part: SplitPart,
    first: StoredBlob,
    store: ModelStore,
    progress: ProgressCallback,
    insecure: bool,
    validators: dict[str, str | None],
) -> FetchedBlob:
    """Download the other parts of the split model whose first part (``first``) ``url``
    named, join them into one blob, and drop the parts. The parts are pinned meanwhile
    (:mod:`power_core.store.pins`): no collection removes them, another pull's included.
    ``validators`` holds the ETag or Last-Modified each download came with (by URL)."""
    try:
        refuse_later_part(url, part)
        urls = part_urls(url, part.count)
    except InvalidRequest:
        store.gc([first.digest])  # refused: what was downloaded to tell goes
        raise
    with pinning(store) as pin, store.partial_download(_note_key(url)) as note:
        first = _kept(pin, first, source, url, store, progress, insecure)
        finished = _finished(note, url)
        kept_first = finished.get(url)
        if kept_first is None or kept_first[0] != first.digest:  # a new first part
            store.gc([digest for digest, _ in finished.values() if digest != first.digest])
            finished = {}
        finished[url] = (first.digest, _validator(source, url, validators, kept_first, insecure))
        note.write_state({"url": url, "parts": finished})
        parts = [first]
        for part_url in urls[1:]:
            kept = finished.get(part_url)
            known = _unchanged(source, kept, part_url, insecure)
            blob = _download_part(
                source, part_url, known, store, progress, insecure, note, validators
            )
            blob = _kept(pin, blob, source, part_url, store, progress, insecure)
            parts.append(blob)
            reused = kept if known is not None and known == blob.digest else None
            validator = _validator(source, part_url, validators, reused, insecure)
            finished[part_url] = (blob.digest, validator)
            note.write_state({"url": url, "parts": finished})
        paths = [store.blob_path(blob.digest) for blob in parts]
        infos = read_parts(paths, urls)
        joined = join_into_store(store, paths, infos, progress)
        note.discard()
    store.gc([blob.digest for blob in parts])  # no model's: the joined blob is
    return FetchedBlob(
        digest=joined.digest,
        size=joined.size,
        suggested_name=suggest_model_name(_whole_url(url)),
        gguf_info=read_gguf_info(store.blob_path(joined.digest)),
    )


def _validator(
    source: UrlSource,
    url: str,
    validators: dict[str, str | None],
    kept: tuple[str, str | None] | None,
    insecure: bool,
) -> str | None:
    """What identifies the part at ``url`` as the store holds it: the validator of the
    response it was downloaded in, else the kept one (checked current), else the server's
    now (a ``HEAD``)."""
    if url in validators:
        return validators[url]
    if kept is not None:
        return kept[1]
    return source.current_validator(url, insecure)


def _kept(
    pin: Callable[[str], None],
    blob: StoredBlob,
    source: UrlSource,
    url: str,
    store: ModelStore,
    progress: ProgressCallback,
    insecure: bool,
) -> StoredBlob:
    """``blob`` (the part at ``url``) pinned; downloaded again, the same bytes, if a
    collection took it before the pin."""
    pin(blob.digest)
    if store.has_blob(blob.digest):
        return blob
    return _download(source, url, blob.digest, store, progress, insecure)


def _download(
    source: UrlSource,
    url: str,
    digest: str,
    store: ModelStore,
    progress: ProgressCallback,
    insecure: bool,
) -> StoredBlob:
    blob, _ = source.download_blob(
        url, store, progress, expected=digest, label=file_label(url), insecure=insecure
    )
    return blob


def _download_part(
    source: UrlSource,
    url: str,
    known: str | None,
    store: ModelStore,
    progress: ProgressCallback,
    insecure: bool,
    note: PartialDownload,
    validators: dict[str, str | None],
) -> StoredBlob:
    """One part: the one an earlier pull finished, if the store still holds it or it
    downloads the same again; else downloaded now."""
    try:
        blob, _ = source.download_blob(
            url,
            store,
            progress,
            expected=known,
            label=file_label(url),
            insecure=insecure,
            validators=validators,
        )
    except DigestMismatch:
        note.discard()  # the parts kept are another version's: start over
        raise PullFailed(
            f"{url} changed on the server since an earlier pull of its model; pull again to "
            "download every part anew"
        ) from None
    return blob


def part_urls(url: str, count: int) -> list[str]:
    """The URLs of all ``count`` parts, from the first part's (the file name changed, the
    query kept: a signed link's parts are signed alike, or not at all)."""
    scheme, host, path, query, fragment = urlsplit(url)
    folder, _, name = path.rpartition("/")
    return [
        urlunsplit((scheme, host, f"{folder}/{part}", query, fragment))
        for part in part_names(name, count)
    ]


def _whole_url(url: str) -> str:
    """``url`` with the whole model's file name (the name a pull suggests)."""
    scheme, host, path, query, fragment = urlsplit(url)
    return urlunsplit((scheme, host, whole_model_name(path), query, fragment))


def _note_key(url: str) -> str:
    return hashlib.sha256(f"split\0{url}".encode()).hexdigest()[:40]


def _unchanged(
    source: UrlSource, kept: tuple[str, str | None] | None, url: str, insecure: bool
) -> str | None:
    """The kept part's digest when the file at ``url`` is still the one it was made from."""
    if kept is None or kept[1] is None:
        return None  # without a validator, nothing tells it is the same file
    digest, validator = kept
    return digest if source.current_validator(url, insecure) == validator else None


def _finished(note: PartialDownload, url: str) -> dict[str, tuple[str, str | None]]:
    """The note's finished parts: URL -> (digest, validator), for the pull of ``url``."""
    state: dict[str, Any] = note.read_state()
    parts = state.get("parts")
    if state.get("url") != url or not isinstance(parts, dict):
        return {}
    return {
        part_url: (kept[0], kept[1])
        for part_url, kept in parts.items()
        if isinstance(kept, list)
        and len(kept) == 2
        and isinstance(kept[0], str)
        and isinstance(kept[1], str | None)
    }

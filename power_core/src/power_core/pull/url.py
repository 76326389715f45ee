"""The built-in ``url`` source: GGUF files over HTTP(S), resumable, verified as they arrive.

Bytes go from the socket straight into one reusable buffer, then to a partial download
beside the store, hashed in the same pass; the disk starts writing them back while the
download goes on (see :mod:`power_core.pull.writeback`). An interrupted pull keeps its
partial file; the next
pull re-hashes what it has and asks the server for the rest with ``Range`` (guarded by
``If-Range`` so a changed file is never stitched onto an old one). A server that ignores
``Range`` gets a clean restart. Only a complete, verified GGUF becomes a blob.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from power_core.errors import DigestMismatch, InvalidModelFile, InvalidRequest, PullFailed
from power_core.gguf import GGUFInfo, check_gguf_magic, read_gguf_info
from power_core.pull.naming import file_label, suggest_model_name
from power_core.pull.network_failures import failure_reason, network_errors
from power_core.pull.split_url import fetch_split, reusable_part
from power_core.pull.writeback import EarlyWriteback
from power_core.sources import FetchedBlob, ProgressCallback, PullProgress
from power_core.split_models import split_part
from power_core.store.base import ModelStore, PartialDownload, StoredBlob
from power_core.store.digests import digest_hex, normalize_digest
from power_core.store.writes import write_all

CHUNK_SIZE = 1 << 20
CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_HEAD_BYTES = 8

if TYPE_CHECKING:
    import requests
    from requests.auth import AuthBase


class _Restart(Exception):
    """The kept partial download cannot be resumed; start again from zero."""


class _NotGGUF(PullFailed):
    """The server sent something else (an HTML page, say): nothing worth keeping."""


class UrlSource:
    """Downloads ``http://`` and ``https://`` addresses of GGUF files."""

    name = "url"

    def __init__(self, session: requests.Session | None = None) -> None:
        self._session = session

    def handles(self, reference: str) -> bool:
        """True for ``http://`` and ``https://`` references."""
        return reference.lower().startswith(("http://", "https://"))

    def check(self, reference: str) -> None:
        """Refuse a URL that cannot be sent (no host, a port past 65535, a space in the
        host): the client's mistake, a 400 before the pull starts, not a failed download."""
        import requests  # here, not at module import: keeps `a3s-power list` fast

        try:
            requests.Request("GET", reference).prepare()
        except (requests.exceptions.RequestException, ValueError) as exc:
            raise InvalidRequest(
                f"cannot pull {reference!r}: not a valid URL ({exc})", param="model"
            ) from None

    def fetch(
        self,
        reference: str,
        store: ModelStore,
        progress: ProgressCallback,
        *,
        expected_digest: str | None = None,
        insecure: bool = False,
    ) -> FetchedBlob:
        """Download ``reference`` into ``store`` as a verified blob (``insecure``: without
        checking the server's TLS certificate).

        Raises PullFailed for HTTP errors, interrupted transfers (the partial file is
        kept for the next pull), content that is not GGUF, and a full disk; raises
        DigestMismatch when the bytes do not hash to ``expected_digest`` (the partial
        download is discarded, nothing is stored).
        """
        url = reference
        expected = normalize_digest(expected_digest) if expected_digest else None
        label = expected[7:19] if expected else file_label(url)
        validators: dict[str, str | None] = {}
        blob, info = self._first_file(url, store, progress, expected, label, insecure, validators)
        part = split_part(info) if info is not None else None
        if part is not None:
            if expected is not None:
                store.gc([blob.digest])  # refused: what was downloaded to tell goes
                raise InvalidRequest(
                    f"{url} is part of a model split into {part.count} files; a digest "
                    "names one file, so it cannot be checked against the joined model",
                    param="digest",
                )
            return fetch_split(self, url, part, blob, store, progress, insecure, validators)
        return FetchedBlob(
            digest=blob.digest,
            size=blob.size,
            suggested_name=suggest_model_name(url),
            gguf_info=info,
        )

    def _first_file(
        self,
        url: str,
        store: ModelStore,
        progress: ProgressCallback,
        expected: str | None,
        label: str,
        insecure: bool,
        validators: dict[str, str | None],
    ) -> tuple[StoredBlob, GGUFInfo | None]:
        """The file ``url`` names; where it began a split model that an earlier pull left
        unfinished, the one that pull downloaded, if the server still has it."""
        known = None if expected else reusable_part(self, store, url, url, insecure)
        if known is not None:
            with contextlib.suppress(DigestMismatch):  # changed since: downloaded anew
                blob, _ = self.download_blob(
                    url, store, progress, expected=known, label=label, insecure=insecure
                )
                return blob, read_gguf_info(store.blob_path(blob.digest))
        return self.download_blob(
            url,
            store,
            progress,
            expected=expected,
            label=label,
            insecure=insecure,
            validators=validators,
        )

    def current_validator(self, url: str, insecure: bool) -> str | None:
        """What identifies the file at ``url`` now (its ETag, else its Last-Modified), from a
        ``HEAD``; ``None`` when the server names none or cannot be asked."""
        import requests

        session = self._session or requests.Session()
        try:
            response = session.head(
                url,
                allow_redirects=True,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                verify=not insecure and session.verify,
            )
            return _validator(response) if response.ok else None
        except (requests.RequestException, ValueError):
            return None
        finally:
            if session is not self._session:
                session.close()

    def download_blob(
        self,
        url: str,
        store: ModelStore,
        progress: ProgressCallback,
        *,
        expected: str | None,
        label: str,
        gguf: bool = True,
        insecure: bool = False,
        auth: AuthBase | None = None,
        size: int | None = None,
        validators: dict[str, str | None] | None = None,
    ) -> tuple[StoredBlob, GGUFInfo | None]:
        """Download ``url`` into ``store`` as a verified blob, resuming a kept partial file.

        With ``gguf`` the body must be a usable GGUF file (its parsed header is returned);
        without, any bytes are stored (the text layers of a registry model). A blob already
        stored under ``expected`` is not downloaded again. ``auth`` signs the requests in
        (a registry's, :mod:`power_core.pull.registry_auth`). ``size``, when known (a
        manifest lists it), is all the file may have: a server announcing another length
        is refused at once, and one sending more is cut off there. ``validators`` gets
        the downloaded file's ETag or Last-Modified under ``url`` (that of the response it
        came in, not of a later request).
        """
        existing = _reuse(store, expected, label, progress) if expected else None
        if existing is not None:
            return existing, None
        key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:40]
        with store.partial_download(key) as partial:
            # Another process may have finished this download while we waited.
            existing = _reuse(store, expected, label, progress) if expected else None
            if existing is not None:
                return existing, None
            if partial.read_state().get("url") != url:
                partial.discard()
            try:
                try:
                    hex_digest, got = self._download(
                        url, partial, expected, label, progress, gguf, insecure, auth, size
                    )
                except _Restart:
                    partial.discard()
                    hex_digest, got = self._download(
                        url, partial, expected, label, progress, gguf, insecure, auth, size
                    )
            except _NotGGUF:
                partial.discard()
                raise
            progress(PullProgress(status="verifying sha256 digest"))
            if expected is not None and hex_digest != digest_hex(expected):
                partial.discard()
                raise DigestMismatch(
                    f"{url}: downloaded content has digest sha256:{hex_digest}, "
                    f"expected {expected}",
                    param="digest",
                )
            info = None
            if gguf:
                try:
                    info = read_gguf_info(partial.path)
                except InvalidModelFile as exc:
                    partial.discard()
                    raise PullFailed(f"{url} is not a usable GGUF model: {exc.message}") from exc
            if validators is not None:
                validators[url] = partial.read_state().get("validator")
            blob = store.commit_partial(partial, digest="sha256:" + hex_digest, size=got)
        return blob, info

    def _download(
        self,
        url: str,
        partial: PartialDownload,
        expected: str | None,
        label: str,
        progress: ProgressCallback,
        gguf: bool,
        insecure: bool,
        auth: AuthBase | None,
        size: int | None,
    ) -> tuple[str, int]:
        state = partial.read_state()
        offset = partial.size() if state else 0
        if offset < _HEAD_BYTES or not state.get("validator"):
            # Without a validator a resume could splice two different files; and the
            # GGUF magic check needs the first bytes of this very download.
            offset = 0
        hasher = hashlib.sha256()
        if offset:
            offset = _hash_prefix(partial, hasher, offset)
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            headers["If-Range"] = str(state["validator"])
        import requests  # here, not at module import: keeps `a3s-power list` fast

        session = self._session or requests.Session()
        if insecure and session is not self._session:
            session.verify = False
        try:
            response = _get(url, session, headers, auth)
            return self._read(
                url,
                response,
                headers,
                partial,
                hasher,
                offset,
                _Expected(expected, size),
                label,
                progress,
                gguf,
            )
        finally:
            if session is not self._session:
                session.close()

    def _read(
        self,
        url: str,
        response: requests.Response,
        headers: dict[str, str],
        partial: PartialDownload,
        hasher: Any,
        offset: int,
        expected: _Expected,
        label: str,
        progress: ProgressCallback,
        gguf: bool,
    ) -> tuple[str, int]:
        total: int | None
        with response:
            if response.status_code == 416 and offset:
                raise _Restart()
            if response.status_code >= 400:
                reason = response.reason or ""
                raise PullFailed(f"cannot download {url}: HTTP {response.status_code} {reason}")
            if response.status_code == 206 and offset:
                total = _resumed_total(response, offset)
                if total is None or _validator(response) not in (None, headers["If-Range"]):
                    # a range of another version of the file: never stitched onto this one
                    raise _Restart()
            elif response.status_code == 200:
                if offset:  # the server ignored Range (or the file changed): start over
                    offset, hasher = 0, hashlib.sha256()
                length = response.headers.get("Content-Length")
                # a compressed body's length is not the file's
                plain = not _is_encoded(response)
                total = int(length) if plain and length and length.isdecimal() else None
            else:
                raise PullFailed(f"cannot download {url}: unexpected HTTP {response.status_code}")
            total = expected.total(url, total)
            validator = _validator(response)
            if validator is None and response.status_code == 206:
                validator = headers["If-Range"]  # the 206 answered it: it still holds
            if _is_encoded(response):
                if response.status_code == 206:
                    raise _Restart()  # a slice of compressed bytes cannot follow decoded ones
                validator = None  # decoded bytes on disk: never resume from their offset
            partial.write_state({"url": url, "validator": validator, "total": total})
            try:
                mode = "ab" if offset else "wb"
                with open(partial.path, mode, buffering=0) as handle:
                    size = self._stream(
                        response,
                        handle,
                        hasher,
                        offset,
                        total,
                        url,
                        expected.digest,
                        label,
                        progress,
                        gguf,
                    )
            except OSError as exc:
                raise _disk_failure(exc, url) from exc
        return hasher.hexdigest(), size

    @staticmethod
    def _stream(
        response: requests.Response,
        handle: IO[bytes],
        hasher: Any,
        offset: int,
        total: int | None,
        url: str,
        expected: str | None,
        label: str,
        progress: ProgressCallback,
        gguf: bool,
    ) -> int:
        """Copy the body to ``handle`` and ``hasher``; returns the bytes now in the file.

        Network failures become PullFailed (the partial file stays for a resume); disk
        failures propagate as OSError.
        """
        completed = offset
        head = b""
        buffer = bytearray(CHUNK_SIZE)
        view = memoryview(buffer)
        read_into = _body_reader(response)
        read_errors = network_errors()
        progress(PullProgress(f"pulling {label}", digest=expected, total=total, completed=offset))
        with EarlyWriteback(handle.fileno()) as writeback:
            while True:
                try:
                    count = read_into(buffer)
                except read_errors as exc:
                    raise PullFailed(
                        f"download of {url} was interrupted at {completed} bytes "
                        f"({failure_reason(exc)}); pull again to resume"
                    ) from exc
                if not count:
                    break
                chunk = view[:count]
                if gguf and completed < _HEAD_BYTES:
                    # Refuse an HTML error page or any other non-GGUF body before
                    # downloading gigabytes of it.
                    head += bytes(chunk[: _HEAD_BYTES - completed])
                    if len(head) >= _HEAD_BYTES and not check_gguf_magic(head):
                        raise _NotGGUF(
                            f"{url} is not a GGUF file (it starts with {head[:8]!r}, "
                            f"content type {response.headers.get('Content-Type', '?')})"
                        )
                completed += count
                if total is not None and completed > total:
                    raise PullFailed(f"{url} sent more bytes than announced ({total})")
                write_all(handle, chunk)
                hasher.update(chunk)
                writeback.wrote(count)
                progress(
                    PullProgress(
                        f"pulling {label}", digest=expected, total=total, completed=completed
                    )
                )
        if gguf and completed < _HEAD_BYTES and not check_gguf_magic(head):
            raise _NotGGUF(f"{url} is not a GGUF file ({completed} bytes)")
        if total is not None and completed < total:  # the connection closed early
            raise PullFailed(
                f"download of {url} was interrupted at {completed} of {total} bytes "
                "(the connection closed); pull again to resume"
            )
        return completed


@dataclass(frozen=True)
class _Expected:
    """What a download should turn out to be: its digest and its size, where known."""

    digest: str | None
    size: int | None

    def total(self, url: str, announced: int | None) -> int | None:
        """The file's length: what the server announced, which must be the known size
        (PullFailed if not), else the known size, so that more bytes are cut off."""
        if self.size is None:
            return announced
        if announced is not None and announced != self.size:
            raise PullFailed(
                f"{url} announces {announced} bytes, where the manifest lists {self.size}"
            )
        return self.size


def _get(
    url: str, session: requests.Session, headers: dict[str, str], auth: AuthBase | None
) -> requests.Response:
    import requests

    try:
        return session.get(
            url, headers=headers, stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), auth=auth
        )
    except (requests.RequestException, ValueError) as exc:  # ValueError: a redirect to
        # an address urllib cannot parse ("http://[::zz/x")
        raise PullFailed(f"cannot download {url}: {failure_reason(exc)}") from exc


def _validator(response: requests.Response) -> str | None:
    """What identifies this version of the file: its ETag, else its Last-Modified."""
    return response.headers.get("ETag") or response.headers.get("Last-Modified")


def _body_reader(response: requests.Response) -> Callable[[bytearray], int]:
    """``readinto`` for the body: from the socket straight into our buffer when nothing
    needs decoding, else through urllib3 (which decodes a compressed body)."""
    raw = response.raw
    connection_body = getattr(raw, "_fp", None)
    if isinstance(connection_body, http.client.HTTPResponse) and not _is_encoded(response):
        return connection_body.readinto

    def decoded_into(buffer: bytearray) -> int:
        data = raw.read(len(buffer), decode_content=True)
        buffer[: len(data)] = data
        return len(data)

    return decoded_into


def _is_encoded(response: requests.Response) -> bool:
    """Whether the body is compressed (a server may ignore ``Accept-Encoding: identity``)."""
    codings = response.headers.get("Content-Encoding", "").replace(",", " ").split()
    return any(coding.lower() != "identity" for coding in codings)


def _hash_prefix(partial: PartialDownload, hasher: Any, size: int) -> int:
    """Hash the kept bytes (resuming needs the digest of everything); returns their count."""
    done = 0
    with open(partial.path, "rb") as handle:
        while done < size:
            chunk = handle.read(min(CHUNK_SIZE, size - done))
            if not chunk:
                break
            hasher.update(chunk)
            done += len(chunk)
    return done


def _resumed_total(response: requests.Response, offset: int) -> int | None:
    """The full size from a 206's Content-Range, or None when it does not continue ours."""
    match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
    if match is None or int(match.group(1)) != offset:
        return None
    return int(match.group(3)) if match.group(3) != "*" else None


def _disk_failure(exc: OSError, url: str) -> PullFailed:
    if exc.errno == errno.ENOSPC:
        return PullFailed(
            f"not enough disk space to download {url}; free some space and pull again to resume"
        )
    return PullFailed(f"cannot save the download of {url}: {exc.strerror or exc}")


def _reuse(
    store: ModelStore, digest: str, label: str, progress: ProgressCallback
) -> StoredBlob | None:
    """The stored blob ``digest``, marked wanted again, or ``None`` when it is not stored.

    Looked up and touched under the store's write lock, which a delete's clean-up waits
    for: it then sees the fresh time and leaves the blob for this pull's manifest.
    """
    with store.write_lock():
        if not store.has_blob(digest):
            return None
        path = store.blob_path(digest)
        size = path.stat().st_size
        with contextlib.suppress(OSError):
            os.utime(path)
    progress(PullProgress(f"pulling {label}", digest=digest, total=size, completed=size))
    progress(PullProgress(status="verifying sha256 digest"))
    return StoredBlob(digest, size)

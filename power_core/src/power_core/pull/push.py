"""Pushing a stored model to an Ollama-compatible registry: the reverse of the registry
source (:mod:`power_core.pull.registry`), in the Docker registry v2 API that Ollama's
registry and the open-source ``registry:2`` speak.

Every blob the manifest lists (the layers, then the config) is looked up with ``HEAD
/v2/<namespace>/<model>/blobs/<digest>``; one the registry lacks is uploaded whole: ``POST
.../blobs/uploads/`` opens an upload and answers with its location, ``PUT
<location>?digest=<digest>`` sends the bytes, which the registry checks against the digest.
The manifest goes last (``PUT .../manifests/<tag>``), so the registry never lists a model
whose blobs it lacks. A registry that wants a token (ollama.com's namespaces) gets one
signed with this machine's key (:mod:`power_core.pull.registry_auth`); one that still
refuses is reported with its status and how to add the key to an account.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import quote, urljoin

from power_core.errors import PushFailed
from power_core.pull.network_failures import failure_reason, network_errors
from power_core.pull.registry import registry_base, registry_tag
from power_core.pull.url import CONNECT_TIMEOUT, READ_TIMEOUT
from power_core.sources import ProgressCallback, PullProgress
from power_core.store.manifest import MANIFEST_MEDIA_TYPE, Layer, Manifest

if TYPE_CHECKING:
    import requests

    from power_core.pull.registry_auth import RegistryTokenAuth

#: progress is reported each time this many more bytes went out (and at the end)
REPORT_EVERY = 1 << 20
_READ_SIZE = 1 << 20


class RegistryPusher:
    """Uploads models to registries; ``session`` is for tests and connection reuse."""

    def __init__(
        self, session: requests.Session | None = None, key_path: Path | None = None
    ) -> None:
        self._session = session
        #: the key that signs in to registries (default ``<home>/id_ed25519``)
        self._key_path = key_path

    def push(
        self,
        reference: str,
        manifest: Manifest,
        blob_path: Callable[[str], Path],
        progress: ProgressCallback,
        *,
        insecure: bool = False,
    ) -> None:
        """Upload the blobs of ``manifest`` the registry lacks, then the manifest itself,
        as ``reference`` (a model name, spelt as the registry should see it)."""
        import requests  # here, not at module import: keeps `a3s-power list` fast

        from power_core.pull.registry_auth import RegistryTokenAuth

        base = registry_base(reference, insecure)
        session = self._session or requests.Session()
        auth = RegistryTokenAuth(self._key_path)
        call = _Caller(session, verify=not insecure, auth=auth)
        try:
            for layer in [*manifest.layers, manifest.config]:
                _push_blob(call, base, layer, blob_path(layer.digest), progress)
            progress(PullProgress(status="pushing manifest"))
            call(
                "PUT",
                f"{base}/manifests/{quote(registry_tag(reference))}",
                "the manifest",
                data=manifest.to_bytes(),
                headers={"Content-Type": MANIFEST_MEDIA_TYPE},
            )
        finally:
            if session is not self._session:
                session.close()


def _push_blob(
    call: _Caller, base: str, layer: Layer, path: Path, progress: ProgressCallback
) -> None:
    status = f"pushing {layer.digest[7:19]}"

    def report(done: int) -> None:
        progress(PullProgress(status, digest=layer.digest, total=layer.size, completed=done))

    found = call("HEAD", f"{base}/blobs/{layer.digest}", f"blob {layer.digest}", absent_ok=True)
    if found.status_code != 404:
        report(layer.size)  # the registry has it: nothing to send
        return
    report(0)
    opened = call("POST", f"{base}/blobs/uploads/", "an upload")
    location = opened.headers.get("Location")
    if not location:
        raise PushFailed("the registry opened an upload without saying where (no Location)")
    target = urljoin(opened.url, location)
    target += ("&" if "?" in target else "?") + f"digest={quote(layer.digest)}"
    with open(path, "rb") as handle:
        body = _ReportingReader(handle, layer.size, report)
        call(
            "PUT",
            target,
            f"blob {layer.digest}",
            data=body,
            headers={"Content-Type": "application/octet-stream"},
        )
    body.report_end()


class _Caller:
    """One request to the registry; a failure or refusal becomes :class:`PushFailed`."""

    def __init__(self, session: requests.Session, *, verify: bool, auth: RegistryTokenAuth) -> None:
        self._session = session
        self._verify = verify
        self._auth = auth

    def __call__(
        self,
        method: str,
        url: str,
        what: str,
        *,
        absent_ok: bool = False,
        data: bytes | _ReportingReader | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        # ValueError: a redirect to an address urllib cannot parse (as in pulls)
        failures: tuple[type[BaseException], ...] = (*network_errors(), ValueError)
        try:
            response = self._session.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                verify=self._verify,
                auth=self._auth,
            )
        except failures as exc:
            raise PushFailed(f"cannot push {what}: {failure_reason(exc)}") from exc
        if response.status_code >= 400 and not (absent_ok and response.status_code == 404):
            raise PushFailed(_refusal(response, what, self._auth.refusal_hint(url)))
        return response


def _refusal(response: requests.Response, what: str, hint: str) -> str:
    message = f"the registry refused {what}: HTTP {response.status_code} {response.reason or ''}"
    detail = response.text[:200].strip() if response.request.method != "HEAD" else ""
    if detail:
        message = f"{message.rstrip()} ({detail})"
    message = message.rstrip()
    if response.status_code in (401, 403):
        message += f"; {hint}"
    return message


class _ReportingReader:
    """A blob's file as an upload body: read in pieces, with progress as bytes go out."""

    def __init__(self, handle: IO[bytes], size: int, report: Callable[[int], None]) -> None:
        self._handle = handle
        self._size = size
        self._report = report
        self._sent = 0
        self._reported = 0

    def __len__(self) -> int:  # requests sends Content-Length, not a chunked body
        return self._size

    def rewind(self) -> None:
        """Back to the first byte: a registry that wanted a new token gets the blob again
        (see :mod:`power_core.pull.registry_auth`)."""
        self._handle.seek(0)
        self._sent = self._reported = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(_READ_SIZE if size is None or size < 0 else size)
        self._sent += len(chunk)
        if self._sent - self._reported >= REPORT_EVERY:
            self._reported = self._sent
            self._report(self._sent)
        return chunk

    def report_end(self) -> None:
        if self._reported != self._sent:
            self._reported = self._sent
            self._report(self._sent)

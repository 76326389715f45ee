"""Downloading one registry model's layers, each verified against the digest and the size
its manifest lists: weights and other large blobs into the store (resumable), small ones
(a config read for a setting, the texts a model is built with) into memory."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from power_core.errors import DigestMismatch, InvalidModelFile, PullFailed
from power_core.pull.network_failures import failure_reason, network_errors
from power_core.pull.url import CONNECT_TIMEOUT, READ_TIMEOUT, UrlSource
from power_core.sources import ProgressCallback, PullProgress
from power_core.store.builder import MAX_TEXT_LAYER
from power_core.store.digests import digest_hex

if TYPE_CHECKING:
    from power_core.gguf import GGUFInfo
    from power_core.names import ModelRef
    from power_core.pull.registry_auth import RegistryTokenAuth
    from power_core.store.base import ModelStore, StoredBlob
    from power_core.store.manifest import Layer


class LayerDownloads:
    """The layers of one model at ``base`` (``scheme://host/v2/namespace/model``)."""

    def __init__(
        self,
        blobs: UrlSource,
        base: str,
        store: ModelStore,
        progress: ProgressCallback,
        insecure: bool,
        auth: RegistryTokenAuth,
    ) -> None:
        self._blobs, self._base, self.store = blobs, base, store
        self._progress, self._insecure, self._auth = progress, insecure, auth

    def __call__(self, layer: Layer, *, gguf: bool) -> tuple[StoredBlob, GGUFInfo | None]:
        """The stored blob, and the GGUF header when ``gguf`` and it was downloaded now."""
        try:
            return self._blobs.download_blob(
                self._url(layer),
                self.store,
                self._progress,
                expected=layer.digest,
                label=layer.digest[7:19],
                gguf=gguf,
                insecure=self._insecure,
                auth=self._auth,
                size=layer.size,
            )
        except DigestMismatch as exc:  # the registry's blob is not its own digest's
            raise PullFailed(exc.message) from exc

    @property
    def progress(self) -> ProgressCallback:
        """Where the pull reports its progress."""
        return self._progress

    def gguf_info(self, layer: Layer) -> GGUFInfo:
        """The GGUF header of a layer already stored (a model file, by what it holds)."""
        from power_core.gguf import read_gguf_info

        return read_gguf_info(self.store.blob_path(layer.digest))

    def small(self, layer: Layer) -> bytes:
        """The bytes of a small layer (at most :data:`MAX_TEXT_LAYER`): from the store when
        it holds them, else downloaded into memory and verified; nothing is stored."""
        if layer.size > MAX_TEXT_LAYER:
            raise InvalidModelFile(
                f"a {layer.kind} layer of {layer.size} bytes; a model reads at most "
                f"{MAX_TEXT_LAYER}"
            )
        if self.store.has_blob(layer.digest):
            return self.store.read_blob_bytes(layer.digest, max_size=MAX_TEXT_LAYER)
        import requests  # here, not at module import: keeps `a3s-power list` fast

        url = self._url(layer)
        label = f"pulling {layer.digest[7:19]}"
        self._progress(PullProgress(label, digest=layer.digest, total=layer.size, completed=0))
        failures: tuple[type[BaseException], ...] = (*network_errors(), ValueError)
        try:
            with requests.get(
                url,
                auth=self._auth,
                stream=True,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                verify=not self._insecure,
            ) as response:
                if response.status_code >= 400:
                    answer = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
                    raise PullFailed(f"cannot download {url}: {answer}")
                data = response.raw.read(layer.size + 1, decode_content=True)
        except failures as exc:
            raise PullFailed(f"cannot download {url}: {failure_reason(exc)}") from exc
        if len(data) != layer.size:
            raise PullFailed(f"{url} sent {len(data)} bytes, where the manifest lists {layer.size}")
        if hashlib.sha256(data).hexdigest() != digest_hex(layer.digest):
            raise PullFailed(f"{url}: the registry's blob is not its digest's ({layer.digest})")
        done = PullProgress(label, digest=layer.digest, total=layer.size, completed=layer.size)
        self._progress(done)
        return data

    def text(self, layer: Layer, what: str) -> str:
        """A small layer's UTF-8 text (``what`` names it in a refusal)."""
        try:
            return self.small(layer).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidModelFile(f"the {what} ({layer.digest[7:19]}) is not UTF-8 text") from exc

    def _url(self, layer: Layer) -> str:
        return f"{self._base}/blobs/{layer.digest}"


def check_expected(ref: ModelRef, weights: Layer, expected_digest: str | None) -> None:
    """Raise :class:`DigestMismatch` when the pull asked for other weights than these."""
    if expected_digest is not None and weights.digest != expected_digest:
        raise DigestMismatch(
            f"'{ref.display}' has weights {weights.digest}, expected {expected_digest}",
            param="digest",
        )

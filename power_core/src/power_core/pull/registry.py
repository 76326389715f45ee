"""The built-in ``registry`` source: ``pull smollm2:135m`` from an Ollama registry.

The protocol is the Docker registry v2 API that Ollama's registry speaks: the manifest at
``/v2/<namespace>/<model>/manifests/<tag>``, then every blob it lists at
``/v2/<namespace>/<model>/blobs/<digest>`` (the registry answers with a redirect to its
storage). Blobs are downloaded, resumed and verified against their digests exactly as URL
pulls are, skipped when the store already holds them, and the manifest is stored last, under
the name that was pulled. Our store has Ollama's layout, so the pulled model is what
``ollama pull`` would have stored.

The registry is reached over HTTPS, except on loopback hosts (``localhost``,
``127.0.0.1``), which are plain HTTP, as Docker treats local registries. ``docker.io``
names reach Docker Hub's registry (``registry-1.docker.io``), where a tag may be one of
Docker's model artifacts (:mod:`power_core.pull.docker_models`): those are stored as a
create would store their GGUF, projector, licenses and template.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from power_core.errors import InvalidModelFile, ModelNotFound, PullFailed
from power_core.names import ModelRef, is_model_name, spelled_parts
from power_core.pull.docker_credentials import is_docker_hub
from power_core.pull.docker_models import (
    DOCKER_LIST_MEDIA_TYPE,
    OCI_INDEX_MEDIA_TYPE,
    OCI_MANIFEST_MEDIA_TYPE,
    fetch_docker_model,
    is_docker_model,
    is_image_index,
    what_else,
)
from power_core.pull.network_failures import failure_reason, network_errors
from power_core.pull.registry_layers import LayerDownloads, check_expected
from power_core.pull.url import CONNECT_TIMEOUT, READ_TIMEOUT, UrlSource
from power_core.sources import FetchedBlob, ProgressCallback
from power_core.store.builder import MAX_TEXT_LAYER, TEXT_KINDS
from power_core.store.layers import load_messages, load_parameters, looks_like_path
from power_core.store.manifest import MANIFEST_MEDIA_TYPE, Layer, Manifest, layer_media_type

if TYPE_CHECKING:
    from pathlib import Path

    import requests

    from power_core.gguf import GGUFInfo
    from power_core.pull.registry_auth import RegistryTokenAuth
    from power_core.store.base import ModelStore

MAX_MANIFEST_RESPONSE = 1 << 20
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1")
#: names on Docker Hub (``docker.io/ai/smollm2``) are served by its registry host
_DOCKER_HUB_REGISTRY = "registry-1.docker.io"
#: an Ollama registry answers with its manifest; an OCI registry may hold Docker's models;
#: an index is accepted only to be named in the refusal (registries answer 404 otherwise)
_MANIFEST_ACCEPT = ", ".join(
    (MANIFEST_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE, OCI_INDEX_MEDIA_TYPE, DOCKER_LIST_MEDIA_TYPE)
)


def registry_base(reference: str, insecure: bool = False) -> str:
    """``scheme://host/v2/namespace/model`` for a model name, spelt as given: the store
    keeps names in lower case, but a registry (hf.co) may care about case. Plain HTTP on
    loopback hosts, or anywhere when ``insecure``."""
    ModelRef.parse(reference)  # a valid name, whatever its case
    host, namespace, model, _ = spelled_parts(reference.strip())
    if is_docker_hub(host):
        host = _DOCKER_HUB_REGISTRY
    plain = insecure or host.split(":", 1)[0].lower() in _LOOPBACK_HOSTS
    scheme = "http" if plain else "https"
    return f"{scheme}://{host}/v2/{namespace}/{model}"


def registry_tag(reference: str) -> str:
    """The tag of a model name, spelt as given (``latest`` when there is none)."""
    ModelRef.parse(reference)
    return spelled_parts(reference.strip())[3]


class RegistrySource:
    """Pulls models by name from Ollama-compatible registries."""

    name = "registry"

    def __init__(
        self, session: requests.Session | None = None, key_path: Path | None = None
    ) -> None:
        self._session = session
        self._blobs = UrlSource(session)
        #: the key that signs in to registries (default ``<home>/id_ed25519``)
        self._key_path = key_path

    def handles(self, reference: str) -> bool:
        """True for model names (``[host/][namespace/]model[:tag]``), not file paths."""
        return is_model_name(reference) and not looks_like_path(reference.strip())

    def fetch(
        self,
        reference: str,
        store: ModelStore,
        progress: ProgressCallback,
        *,
        expected_digest: str | None = None,
        insecure: bool = False,
    ) -> FetchedBlob:
        """Download the manifest of ``reference`` and every blob it lists into ``store``.

        Raises ModelNotFound when the registry has no such model or tag, PullFailed for
        other HTTP errors, interrupted transfers (partial blobs are kept for the next
        pull), a manifest that is not one and a blob that does not hash to its digest.
        ``expected_digest``, if given, must be the weights' (DigestMismatch if not).
        ``insecure`` speaks plain HTTP to the registry (Ollama's ``--insecure``).
        """
        ref = ModelRef.parse(reference)
        try:
            return self._fetch(ref, reference, store, progress, expected_digest, insecure)
        except InvalidModelFile as exc:
            # the registry served what is not a model: its failure, not the request's (502)
            raise PullFailed(exc.message) from exc

    def _fetch(
        self,
        ref: ModelRef,
        reference: str,
        store: ModelStore,
        progress: ProgressCallback,
        expected_digest: str | None,
        insecure: bool,
    ) -> FetchedBlob:
        from power_core.pull.registry_auth import RegistryTokenAuth

        auth = RegistryTokenAuth(self._key_path)
        base = registry_base(reference, insecure)
        manifest = self._manifest(ref, f"{base}/manifests/{registry_tag(reference)}", auth)
        download = LayerDownloads(self._blobs, base, store, progress, insecure, auth)
        if is_docker_model(manifest):
            return fetch_docker_model(ref, manifest, download, expected_digest)
        weights = manifest.layer("model")
        if weights is None:
            other = what_else(manifest)
            if other is not None:
                raise InvalidModelFile(f"'{ref.display}' is {other}, not a GGUF model")
            raise InvalidModelFile(f"the registry's manifest of '{ref.display}' has no model")
        check_expected(ref, weights, expected_digest)
        _check_text_sizes(ref, [layer for layer in manifest.layers if layer.kind in TEXT_KINDS])
        info: GGUFInfo | None = None
        for layer in [*manifest.layers, manifest.config]:
            is_weights = layer.media_type == layer_media_type("model")
            _, parsed = download(layer, gguf=is_weights)
            if is_weights:
                info = parsed
        _check_stored_layers(ref.display, manifest, store)
        return FetchedBlob(
            digest=weights.digest,
            size=weights.size,
            suggested_name=ref.display,
            gguf_info=info or download.gguf_info(weights),
            manifest=manifest,
        )

    def _manifest(self, ref: ModelRef, url: str, auth: RegistryTokenAuth) -> Manifest:
        import requests  # here, not at module import: keeps `a3s-power list` fast

        session = self._session or requests.Session()
        # ValueError: a redirect to an address urllib cannot parse (see url.py's _request)
        failures: tuple[type[BaseException], ...] = (*network_errors(), ValueError)
        try:
            response = session.get(
                url,
                headers={"Accept": _MANIFEST_ACCEPT},
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                stream=True,
                auth=auth,
            )
            with response:
                if response.status_code == 404:
                    raise ModelNotFound(ref.display)
                if response.status_code >= 400:
                    answer = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
                    message = f"cannot pull '{ref.display}': the registry answered {answer}"
                    if response.status_code in (401, 403):
                        message += f"; {auth.refusal_hint(url)}"
                    raise PullFailed(message)
                raw = response.raw.read(MAX_MANIFEST_RESPONSE + 1, decode_content=True)
        except failures as exc:
            raise PullFailed(f"cannot pull '{ref.display}': {failure_reason(exc)}") from exc
        finally:
            if session is not self._session:
                session.close()
        if is_image_index(raw):
            raise InvalidModelFile(
                f"'{ref.display}' is an image index (an image for each platform), not a model"
            )
        return Manifest.from_bytes(raw, where=f"the registry's manifest of '{ref.display}'")


def _check_text_sizes(ref: ModelRef, layers: list[Layer]) -> None:
    """Refuse, before any download, a text layer larger than a model reads back."""
    for layer in layers:
        if layer.size > MAX_TEXT_LAYER:
            raise InvalidModelFile(
                f"the registry's manifest of '{ref.display}' has a {layer.kind} layer of "
                f"{layer.size} bytes; a model reads at most {MAX_TEXT_LAYER}"
            )


def _check_stored_layers(display: str, manifest: Manifest, store: ModelStore) -> None:
    """Raise :class:`InvalidModelFile` if a pulled ``params`` or ``messages`` layer is not
    the JSON a model reads back: such a model could never be used."""
    for layer in manifest.layers:
        if layer.kind not in ("params", "messages"):
            continue
        raw = store.read_blob_bytes(layer.digest, max_size=MAX_TEXT_LAYER)
        text = raw.decode("utf-8", errors="replace")
        if layer.kind == "params":
            load_parameters(display, [text])
        else:
            load_messages(display, [text])

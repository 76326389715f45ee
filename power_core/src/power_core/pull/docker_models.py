"""Docker's model artifacts: what ``docker model pull`` fetches (Docker Hub's ``ai/``
namespace, or any OCI registry holding models that ``docker model package`` pushed).

Such a model is an OCI image manifest whose config is Docker's model config
(``application/vnd.docker.ai.model.config.v0.1+json``) and whose layers carry Docker's media
types: the GGUF weights, a multimodal projector, licenses and a Jinja chat template. A pull
downloads the layers it can use and stores the model in Ollama's layout, as a create would
build it: the same blobs (so nothing is stored twice), Ollama's media types, and the
config's ``context_size`` as the model's ``num_ctx``.

Weights in several GGUF files (a split model, ``docker model package`` of a
``-00001-of-0000N.gguf`` file) are downloaded part by part and joined into one, as a pull of
a split model's URL joins them (:mod:`power_core.split_models`). Safetensors weights are
refused before anything is downloaded: the backend reads GGUF. So are CNCF ModelPack
artifacts and container images, which are no GGUF models either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from power_core.adapters import is_adapter
from power_core.errors import InvalidModelFile, InvalidRequest
from power_core.gguf import GGUFInfo, read_gguf_info
from power_core.projectors import is_projector
from power_core.pull.registry_layers import check_expected
from power_core.sources import FetchedBlob
from power_core.split_joining import join_into_store
from power_core.split_models import part_number, read_parts
from power_core.store.builder import MAX_TEXT_LAYER, LayerChanges
from power_core.store.manifest import Layer, Manifest
from power_core.store.pins import pinning

if TYPE_CHECKING:
    from power_core.names import ModelRef
    from power_core.pull.registry_layers import LayerDownloads
    from power_core.store.base import StoredBlob

OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.list.v2+json"

_DOCKER_AI = "application/vnd.docker.ai."
_CONFIG_PREFIX = _DOCKER_AI + "model.config"
_WEIGHTS = _DOCKER_AI + "gguf.v3"
_PROJECTOR = _DOCKER_AI + "mmproj"
_LICENSE = _DOCKER_AI + "license"
_CHAT_TEMPLATE = _DOCKER_AI + "chat.template.jinja"
#: what other kinds of OCI artifact are, by the prefix of their config's media type
_OTHER_ARTIFACTS = {
    "application/vnd.cncf.model.": "a CNCF ModelPack artifact",
    "application/vnd.cnai.model.": "a CNCF ModelPack artifact",
    # (not Docker's container config type: Ollama's models use it too)
    "application/vnd.oci.image.config.": "a container image",
}
#: weights in a form the backend cannot load, by what they are called in a refusal
_OTHER_WEIGHTS = {
    _DOCKER_AI + "safetensors": "safetensors",
    _DOCKER_AI + "dir.tar": "a directory archive",
    _DOCKER_AI + "vllm.config.tar": "vLLM configuration",
    _DOCKER_AI + "dduf": "DDUF",
}


@dataclass
class DockerModelLayers:
    """The layers of a Docker model artifact that a pull downloads."""

    #: one GGUF, or the parts of a split one (in the manifest's order)
    weights: list[Layer]
    projector: Layer | None = None
    licenses: list[Layer] = field(default_factory=list)
    template: Layer | None = None

    @property
    def text_layers(self) -> list[Layer]:
        """The licenses and the template: small texts the model keeps."""
        return [*self.licenses, *([self.template] if self.template else [])]


def is_docker_model(manifest: Manifest) -> bool:
    """Whether a registry's manifest is a Docker model artifact, not an Ollama model."""
    if manifest.config.media_type.startswith(_CONFIG_PREFIX):
        return True
    return any(layer.media_type.startswith(_DOCKER_AI) for layer in manifest.layers)


def is_image_index(raw: bytes) -> bool:
    """Whether a manifest's bytes are an index of several images (a multi-platform image),
    which lists manifests instead of layers."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return False
    if not isinstance(data, dict):
        return False
    return data.get("mediaType") in (OCI_INDEX_MEDIA_TYPE, DOCKER_LIST_MEDIA_TYPE) or (
        "manifests" in data and "layers" not in data
    )


def what_else(manifest: Manifest) -> str | None:
    """What a manifest holding no model is, by its config's media type (``a container
    image``, ...), or ``None`` when that says nothing."""
    for prefix, kind in _OTHER_ARTIFACTS.items():
        if manifest.config.media_type.startswith(prefix):
            return kind
    return None


def fetch_docker_model(
    ref: ModelRef, manifest: Manifest, download: LayerDownloads, expected_digest: str | None
) -> FetchedBlob:
    """Download a Docker model artifact's GGUF and projector into the store and read its
    texts and config; the library builds the model around them as a create does.
    Raises :class:`InvalidModelFile` for an artifact the store cannot hold, before any
    download when its manifest shows it."""
    layers = docker_model_layers(manifest, ref.display)
    if len(layers.weights) == 1:  # a split model's digest is its joined file's
        check_expected(ref, layers.weights[0], expected_digest)
    texts = sum(layer.size for layer in layers.text_layers)
    if texts > MAX_TEXT_LAYER:
        raise InvalidModelFile(
            f"'{ref.display}' has {texts} bytes of licenses and template; a model reads at "
            f"most {MAX_TEXT_LAYER}"
        )
    num_ctx = context_size(download.small(manifest.config))
    weights, info = _weights(ref, layers.weights, download)
    if is_projector(info) or is_adapter(info):
        what = "a multimodal projector" if is_projector(info) else "a LoRA adapter"
        raise InvalidModelFile(f"the weights of '{ref.display}' are {what}, not a model")
    projector = None
    if layers.projector is not None:
        projector, read = download(layers.projector, gguf=True)
        if not is_projector(read or download.gguf_info(layers.projector)):
            raise InvalidModelFile(
                f"the projector layer of '{ref.display}' is not a multimodal projector"
            )
    changes = LayerChanges(
        template=download.text(layers.template, "chat template") if layers.template else None,
        licenses=[download.text(layer, "license") for layer in layers.licenses] or None,
        parameters={"num_ctx": num_ctx} if num_ctx else {},
    )
    return FetchedBlob(
        digest=weights.digest,
        size=weights.size,
        suggested_name=ref.display,
        gguf_info=info,
        changes=changes,
        projector=projector,
    )


def _weights(
    ref: ModelRef, layers: list[Layer], download: LayerDownloads
) -> tuple[StoredBlob, GGUFInfo]:
    """The model's weights: its one GGUF layer, or its split parts downloaded and joined
    into one blob (the parts then dropped)."""
    if len(layers) == 1:
        weights, info = download(layers[0], gguf=True)
        return weights, info or download.gguf_info(layers[0])
    store = download.store
    try:
        # pinned before they are fetched: no collection (another pull's) takes them meanwhile
        with pinning(store) as pin:
            for layer in layers:
                pin(layer.digest)
            parts = [(download(layer, gguf=True)[0], download.gguf_info(layer)) for layer in layers]
            parts.sort(key=lambda part: part_number(part[1]))
            paths = [store.blob_path(blob.digest) for blob, _ in parts]
            infos = read_parts(paths, [f"layer {blob.digest}" for blob, _ in parts])
            joined = join_into_store(store, paths, infos, download.progress)
    except InvalidRequest as exc:
        store.gc([layer.digest for layer in layers])
        raise InvalidModelFile(
            f"'{ref.display}' has {len(layers)} GGUF layers, not the parts of one model: "
            f"{exc.message}"
        ) from None
    # no model's: the joined blob is (a pull that failed keeps them: pulled again, they are
    # not downloaded again; else they go with a collection once an hour old)
    store.gc([layer.digest for layer in layers])
    return joined, read_gguf_info(store.blob_path(joined.digest))


def docker_model_layers(manifest: Manifest, display: str) -> DockerModelLayers:
    """Sort a Docker model artifact's layers; raises :class:`InvalidModelFile` for one the
    store cannot hold (no GGUF, other weights, two projectors or templates).
    Layers of a kind this does not know are left out."""
    where = f"'{display}' (a Docker model artifact)"
    by_type: dict[str, list[Layer]] = {}
    for layer in manifest.layers:
        listed = by_type.setdefault(layer.media_type, [])
        if all(other.digest != layer.digest for other in listed):  # each blob once
            listed.append(layer)
    for media_type, kind in _OTHER_WEIGHTS.items():
        if media_type in by_type:
            raise InvalidModelFile(f"{where} holds {kind} weights; A3S Power runs GGUF models")
    weights = by_type.get(_WEIGHTS, [])
    if not weights:
        raise InvalidModelFile(f"{where} has no GGUF weights")
    projectors = by_type.get(_PROJECTOR, [])
    templates = by_type.get(_CHAT_TEMPLATE, [])
    for found, what in ((projectors, "multimodal projectors"), (templates, "chat templates")):
        if len(found) > 1:
            raise InvalidModelFile(f"{where} has {len(found)} {what}; a model has one")
    return DockerModelLayers(
        weights=weights,
        projector=projectors[0] if projectors else None,
        licenses=by_type.get(_LICENSE, []),
        template=templates[0] if templates else None,
    )


def context_size(config: bytes) -> int | None:
    """The ``config.context_size`` of a Docker model config (what ``docker model package
    --context-size`` set), or ``None`` when it sets none."""
    try:
        data = json.loads(config)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    settings = data.get("config") if isinstance(data, dict) else None
    size = settings.get("context_size") if isinstance(settings, dict) else None
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    return None

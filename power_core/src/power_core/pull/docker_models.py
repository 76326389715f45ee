"""Docker's model artifacts: what ``docker model pull`` fetches (Docker Hub's ``ai/``
namespace, or any OCI registry holding models that ``docker model package`` pushed).

Such a model is an OCI image manifest whose config is Docker's model config
(``application/vnd.docker.ai.model.config.v0.1+json``) and whose layers carry Docker's media
types: the GGUF weights, a multimodal projector, licenses and a Jinja chat template. A pull
downloads the layers it can use and stores the model in Ollama's layout, as a create would
build it: the same blobs (so nothing is stored twice), Ollama's media types, and the
config's ``context_size`` as the model's ``num_ctx``.

Weights in several GGUF files (a split model) and safetensors weights are refused before
anything is downloaded: the store and the backend read one GGUF file per model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from power_core.errors import InvalidModelFile
from power_core.store.manifest import Layer, Manifest

OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.list.v2+json"

_DOCKER_AI = "application/vnd.docker.ai."
_CONFIG_PREFIX = _DOCKER_AI + "model.config"
_WEIGHTS = _DOCKER_AI + "gguf.v3"
_PROJECTOR = _DOCKER_AI + "mmproj"
_LICENSE = _DOCKER_AI + "license"
_CHAT_TEMPLATE = _DOCKER_AI + "chat.template.jinja"
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

    weights: Layer
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


def docker_model_layers(manifest: Manifest, display: str) -> DockerModelLayers:
    """Sort a Docker model artifact's layers; raises :class:`InvalidModelFile` for one the
    store cannot hold (no GGUF, a split GGUF, other weights, two projectors or templates).
    Layers of a kind this does not know are left out."""
    where = f"'{display}' (a Docker model artifact)"
    by_type: dict[str, list[Layer]] = {}
    for layer in manifest.layers:
        by_type.setdefault(layer.media_type, []).append(layer)
    for media_type, kind in _OTHER_WEIGHTS.items():
        if media_type in by_type:
            raise InvalidModelFile(f"{where} holds {kind} weights; A3S Power runs GGUF models")
    weights = by_type.get(_WEIGHTS, [])
    if not weights:
        raise InvalidModelFile(f"{where} has no GGUF weights")
    if len(weights) > 1:
        raise InvalidModelFile(
            f"{where} is a GGUF split into {len(weights)} files; A3S Power loads a model "
            "from one GGUF file (llama.cpp's gguf-split --merge joins them)"
        )
    projectors = by_type.get(_PROJECTOR, [])
    templates = by_type.get(_CHAT_TEMPLATE, [])
    for found, what in ((projectors, "multimodal projectors"), (templates, "chat templates")):
        if len(found) > 1:
            raise InvalidModelFile(f"{where} has {len(found)} {what}; a model has one")
    return DockerModelLayers(
        weights=weights[0],
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

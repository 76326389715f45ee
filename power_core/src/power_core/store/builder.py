"""Assembling a model's manifest: weights, text layers and the config blob.

Used by ``create``, ``pull`` and ``import``: the weights blob is already verified in the
store; this writes the small layers (template, system prompt, parameters, licenses,
messages), derives the config from the GGUF header and returns the manifest to write.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from power_core.errors import InvalidRequest
from power_core.gguf import GGUFInfo
from power_core.sources import ProgressCallback, PullProgress
from power_core.store.base import ModelStore, StoredBlob
from power_core.store.digests import digest_from_hex
from power_core.store.manifest import CONFIG_MEDIA_TYPE, Layer, Manifest, ModelConfig
from power_core.store.manifest import layer_media_type as media

#: the most bytes a text layer (template, system, license, params, messages) may have: a
#: model reads no larger one back
MAX_TEXT_LAYER = 8 << 20
#: layer kinds a new layer replaces (license and messages are replaced as a whole too)
TEXT_KINDS = ("template", "system", "params", "messages", "license")


@dataclass
class LayerChanges:
    """What a create sets on top of its base; ``None`` keeps the base's layer."""

    template: str | None = None
    system: str | None = None
    #: merged over the base's parameters, key by key
    parameters: dict[str, Any] = field(default_factory=dict)
    licenses: list[str] | None = None
    #: (role, content) pairs; replaces the base's messages
    messages: list[tuple[str, str]] | None = None

    def text_layers(self) -> list[tuple[str, bytes]]:
        """``(kind, bytes)`` of the text layers these changes write, parameters aside;
        raises :class:`InvalidRequest` for one larger than a model may read back."""
        texts: list[tuple[str, bytes]] = []
        if self.template is not None:
            texts.append(("template", self.template.encode()))
        if self.system is not None:
            texts.append(("system", self.system.encode()))
        texts.extend(("license", text.encode()) for text in self.licenses or [])
        if self.messages:
            body = [{"role": role, "content": content} for role, content in self.messages]
            texts.append(("messages", json.dumps(body).encode()))
        return [(kind, checked_text_layer(kind, data)) for kind, data in texts]


def checked_text_layer(kind: str, data: bytes) -> bytes:
    """``data``, unless it is larger than a text layer may be (:data:`MAX_TEXT_LAYER`)."""
    if len(data) > MAX_TEXT_LAYER:
        raise InvalidRequest(
            f"the {kind} has {len(data)} bytes; a model's {kind} may have at most {MAX_TEXT_LAYER}",
            param="parameters" if kind == "params" else kind,
        )
    return data


def config_for(info: GGUFInfo, model_digest: str) -> ModelConfig:
    """The config Ollama would write for this GGUF."""
    family = info.family
    return ModelConfig(
        model_format="gguf",
        model_family=family,
        model_families=[family] if family else [],
        model_type=info.parameter_size,
        file_type=info.quantization,
        diff_ids=[model_digest],
    )


def _put_text_layer(store: ModelStore, kind: str, data: bytes, progress: ProgressCallback) -> Layer:
    digest = digest_from_hex(hashlib.sha256(data).hexdigest())
    existed = store.has_blob(digest)
    blob = store.put_blob_bytes(data, expected_digest=digest)
    verb = "using existing layer" if existed else "creating new layer"
    progress(PullProgress(status=f"{verb} {blob.digest}"))
    return Layer(media_type=media(kind), digest=blob.digest, size=blob.size)


def build_manifest(
    store: ModelStore,
    *,
    weights: StoredBlob,
    info: GGUFInfo,
    base: Manifest | None,
    base_parameters: dict[str, Any],
    changes: LayerChanges,
    progress: ProgressCallback,
    adapters: Sequence[StoredBlob] = (),
    projector: StoredBlob | None = None,
) -> Manifest:
    """Put the text layers and the config blob; return the manifest (not yet written).

    The base's adapters are kept, and ``adapters`` (blobs already stored) follow them. A
    ``projector`` replaces the base's.

    Hold ``store.write_lock()`` around this and the manifest write so that a concurrent
    garbage collection never removes a layer between the two.
    """
    layers = [Layer(media_type=media("model"), digest=weights.digest, size=weights.size)]
    kept = {"template", "system", "license", "messages", "projector", "adapter"}
    if base is not None:
        for layer in base.layers:
            new_projector = layer.kind == "projector" and projector is not None
            if layer.kind in kept and not (_replaced(layer.kind, changes) or new_projector):
                layers.append(layer)
    if projector is not None:
        layers.append(Layer(media("projector"), digest=projector.digest, size=projector.size))
    for adapter in adapters:
        if not any(layer.digest == adapter.digest for layer in layers):
            layers.append(Layer(media("adapter"), digest=adapter.digest, size=adapter.size))
    texts = changes.text_layers()
    parameters = {**base_parameters, **changes.parameters}
    if parameters:
        data = json.dumps(parameters, sort_keys=True).encode()
        texts.append(("params", checked_text_layer("params", data)))
    # every size is checked before the first layer is written
    layers.extend(_put_text_layer(store, kind, data, progress) for kind, data in texts)
    config = store.put_blob_bytes(config_for(info, weights.digest).to_bytes())
    return Manifest(
        config=Layer(media_type=CONFIG_MEDIA_TYPE, digest=config.digest, size=config.size),
        layers=layers,
    )


def _replaced(kind: str, changes: LayerChanges) -> bool:
    if kind == "template":
        return changes.template is not None
    if kind == "system":
        return changes.system is not None
    if kind == "license":
        return changes.licenses is not None
    if kind == "messages":
        return changes.messages is not None
    return False

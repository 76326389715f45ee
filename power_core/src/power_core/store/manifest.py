"""Manifests and model configs in Ollama's format (a Docker v2 image manifest).

A manifest names a config blob and an ordered list of layers; each layer is a blob with a
media type saying what it holds (the weights, a template, a system prompt, parameters,
...). The JSON written here is what Ollama writes, so either tool can read the other's
store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from power_core.errors import InvalidModelFile
from power_core.store.digests import is_digest, normalize_digest

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_MEDIA_PREFIX = "application/vnd.ollama.image."

#: the layer kinds Ollama defines (``application/vnd.ollama.image.<kind>``)
LAYER_KINDS = (
    "model",
    "template",
    "system",
    "params",
    "license",
    "messages",
    "adapter",
    "projector",
)

#: a manifest is a small JSON document; anything bigger is not one
MAX_MANIFEST_BYTES = 1 << 20


def layer_media_type(kind: str) -> str:
    """``application/vnd.ollama.image.<kind>``."""
    return LAYER_MEDIA_PREFIX + kind


@dataclass(frozen=True)
class Layer:
    """One blob referenced by a manifest."""

    media_type: str
    digest: str
    size: int
    #: Ollama records where an adapter or projector layer came from
    from_: str | None = None

    @property
    def kind(self) -> str:
        """``model``, ``template``, ... or the full media type when it is not Ollama's."""
        if self.media_type.startswith(LAYER_MEDIA_PREFIX):
            return self.media_type[len(LAYER_MEDIA_PREFIX) :]
        return self.media_type

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.from_:
            data["from"] = self.from_
        return data

    @classmethod
    def from_json(cls, data: Any, where: str) -> Layer:
        if not isinstance(data, dict):
            raise InvalidModelFile(f"{where}: a layer is not an object")
        media_type, digest, size = data.get("mediaType"), data.get("digest"), data.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise InvalidModelFile(f"{where}: a layer has no mediaType")
        if not isinstance(digest, str) or not is_digest(digest):
            raise InvalidModelFile(f"{where}: a layer has an invalid digest {digest!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidModelFile(f"{where}: a layer has an invalid size {size!r}")
        from_ = data.get("from")
        return cls(
            media_type=media_type,
            digest=normalize_digest(digest),
            size=size,
            from_=from_ if isinstance(from_, str) else None,
        )


@dataclass
class Manifest:
    """A model: its config blob and layers."""

    config: Layer
    layers: list[Layer] = field(default_factory=list)

    def layers_of(self, kind: str) -> list[Layer]:
        """Every layer of one kind, in order."""
        return [layer for layer in self.layers if layer.kind == kind]

    def layer(self, kind: str) -> Layer | None:
        """The first layer of one kind, or ``None``."""
        for layer in self.layers:
            if layer.kind == kind:
                return layer
        return None

    @property
    def digests(self) -> list[str]:
        """Every blob this manifest references (config first)."""
        return [self.config.digest, *(layer.digest for layer in self.layers)]

    @property
    def total_size(self) -> int:
        """Bytes of all layers and the config, as Ollama counts a model's size."""
        return self.config.size + sum(layer.size for layer in self.layers)

    def to_bytes(self) -> bytes:
        """Compact JSON, as Ollama writes it; the model's ID is the SHA-256 of these bytes."""
        data = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
        return json.dumps(data, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes, where: str = "manifest") -> Manifest:
        """Parse and check a manifest; raises InvalidModelFile naming ``where``."""
        if len(raw) > MAX_MANIFEST_BYTES:
            raise InvalidModelFile(f"{where}: too large to be a manifest")
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise InvalidModelFile(f"{where}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise InvalidModelFile(f"{where}: not a JSON object")
        if data.get("schemaVersion") != 2:
            raise InvalidModelFile(
                f"{where}: unsupported schemaVersion {data.get('schemaVersion')!r}"
            )
        layers = data.get("layers")
        if not isinstance(layers, list):
            raise InvalidModelFile(f"{where}: no layers list")
        return cls(
            config=Layer.from_json(data.get("config"), where),
            layers=[Layer.from_json(item, where) for item in layers],
        )


@dataclass
class ModelConfig:
    """The config blob: Ollama's ``ConfigV2`` (format, family, size, quantization)."""

    model_format: str = "gguf"
    model_family: str = ""
    model_families: list[str] = field(default_factory=list)
    #: parameter size text, e.g. ``134.52M``
    model_type: str = ""
    #: quantization level, e.g. ``Q4_1``
    file_type: str = ""
    #: the model layers' digests (Docker's rootfs)
    diff_ids: list[str] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        data = {
            "model_format": self.model_format,
            "model_family": self.model_family,
            "model_families": self.model_families,
            "model_type": self.model_type,
            "file_type": self.file_type,
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": self.diff_ids},
        }
        return json.dumps(data, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> ModelConfig:
        """Lenient parse: a missing or odd field becomes its default."""
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return cls()
        if not isinstance(data, dict):
            return cls()

        def text(key: str) -> str:
            value = data.get(key)
            return value if isinstance(value, str) else ""

        families = data.get("model_families")
        rootfs = data.get("rootfs")
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        return cls(
            model_format=text("model_format") or "gguf",
            model_family=text("model_family"),
            model_families=[f for f in families if isinstance(f, str)]
            if isinstance(families, list)
            else [],
            model_type=text("model_type"),
            file_type=text("file_type"),
            diff_ids=[d for d in diff_ids if isinstance(d, str)]
            if isinstance(diff_ids, list)
            else [],
        )

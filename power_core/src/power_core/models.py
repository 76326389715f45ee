"""What the core knows about a stored model, as the library hands it to surfaces and engines."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from power_core.chat.template_syntax import template_thinks
from power_core.types import ChatMessage


@dataclass
class ModelDetails:
    """Ollama's ``details`` object."""

    format: str = "gguf"
    family: str = ""
    families: list[str] = field(default_factory=list)
    parameter_size: str = ""
    quantization_level: str = ""
    parent_model: str = ""


@dataclass
class ModelSummary:
    """One row of ``list``: enough for ``/api/tags`` and ``/v1/models``."""

    #: canonical short name, e.g. ``smollm2:135m`` (host and namespace shown only when
    #: they are not the defaults)
    name: str
    #: SHA-256 hex of the manifest (Ollama's model ID / digest)
    digest: str
    #: bytes of all layers
    size: int
    modified_at: datetime
    details: ModelDetails


@dataclass
class ResolvedModel:
    """A model ready to load: its weights' path and the layers that shape prompts."""

    name: str
    digest: str
    model_path: Path
    model_digest: str
    format: str
    size: int
    modified_at: datetime
    details: ModelDetails
    template: str | None = None
    system: str | None = None
    #: Modelfile ``PARAMETER`` values (``stop`` is a list; numbers are numbers)
    parameters: dict[str, Any] = field(default_factory=dict)
    license: str | None = None
    messages: list[ChatMessage] = field(default_factory=list)
    #: GGUF header key/values; large arrays (token lists) left out
    metadata: dict[str, Any] = field(default_factory=dict)
    #: ``completion``, ``tools``, ``insert``, ``embedding``, ``vision``, ``thinking``
    capabilities: list[str] = field(default_factory=list)
    #: files of the GGUF LoRA adapters applied on top of the weights, in order
    adapters: list[Path] = field(default_factory=list)
    #: the multimodal projector (``projector`` layer) that lets it read images
    projector: Path | None = None

    @property
    def embeds_only(self) -> bool:
        """Whether the model makes embeddings and generates nothing (its GGUF declares a
        pooling type, as Ollama tells them apart)."""
        return "embedding" in self.capabilities and "completion" not in self.capabilities

    def can_think(self, template: str | None = None) -> bool:
        """Whether the model's reasoning can be told apart: it thinks, or ``template`` (a
        request's own, replacing the model's) has a thinking block."""
        return "thinking" in self.capabilities or template_thinks(template or "")


@dataclass
class ModelDescription:
    """Everything ``show`` prints and ``/api/show`` returns."""

    model: ResolvedModel
    modelfile: str
    #: Ollama's ``parameters`` text (one ``name value`` per line)
    parameters_text: str
    #: GGUF metadata; with ``verbose`` large arrays are included
    model_info: dict[str, Any]
    #: the projector's GGUF metadata (``None`` without one), as ``model_info``
    projector_info: dict[str, Any] | None = None
    #: the model file's tensors: name, ggml type name, shape (as Ollama's ``tensors``)
    tensors: list[tuple[str, str, tuple[int, ...]]] = field(default_factory=list)

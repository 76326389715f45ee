"""Multimodal projectors: the GGUF files (llama.cpp's ``mmproj``) that turn images into
embeddings a model reads, stored as a model's ``projector`` layer
(``application/vnd.ollama.image.projector``), as Ollama stores them.

A create takes one from a second Modelfile ``FROM`` (Ollama's LLaVA example), a ``FROM``
folder holding the model's GGUF and its projector's, or ``/api/create`` ``files``; a model
created from another keeps the other's. The backend gets it in
:attr:`power_core.engine.LoadSpec.projector`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from power_core.errors import InvalidRequest
from power_core.gguf import GGUFInfo, read_gguf_info
from power_core.split_models import split_part
from power_core.store.base import StoredBlob

#: ``general.type`` of projectors: llama.cpp's converter writes ``mmproj``, Ollama's
#: ``projector``
_PROJECTOR_TYPES = ("mmproj", "projector")


@dataclass(frozen=True)
class ProjectorSource:
    """The projector a create adds: a file to copy in, or a blob already stored."""

    #: how the request named it (a path, or a file name of ``files``), for messages
    label: str
    source: Path | StoredBlob


def is_projector(info: GGUFInfo) -> bool:
    """Whether a GGUF file is a multimodal projector rather than a model."""
    metadata = info.metadata
    return (
        metadata.get("general.architecture") == "clip"
        or metadata.get("general.type") in _PROJECTOR_TYPES
    )


def check_projector(label: str, projector: GGUFInfo) -> None:
    """Refuse a projector that is none. Whether it fits the model is the backend's to say
    at load (the width it gives is in its tensors' shapes, which differ by projector type;
    ``clip.vision.projection_dim`` holds the vision tower's own in older files)."""
    if not is_projector(projector):
        raise InvalidRequest(
            f"{label} is not a multimodal projector (an mmproj GGUF): a model takes one "
            "GGUF of weights and at most one projector"
        )


def check_weights(label: str, weights: GGUFInfo) -> None:
    """Refuse a projector given as a model's weights."""
    if is_projector(weights):
        raise InvalidRequest(
            f"{label} is a multimodal projector, not a model: create FROM the model's GGUF, "
            "with the projector as a second FROM",
            param="from",
        )


def gguf_files_in(folder: Path) -> tuple[Path, Path | None]:
    """A ``FROM`` folder's model GGUF and its projector (one of each at most); a model
    split into parts counts once, as its first part."""
    models: list[Path] = []
    projectors: list[Path] = []
    for path in sorted(folder.glob("*.gguf")):
        if not path.is_file():
            continue
        info = read_gguf_info(path)
        part = split_part(info)
        if part is not None and part.number > 1:
            continue  # joined with the first part of its split model
        (projectors if is_projector(info) else models).append(path)
    if len(models) != 1 or len(projectors) > 1:
        found = ", ".join(p.name for p in models + projectors) or "none"
        raise InvalidRequest(
            f"FROM {folder}: a folder must hold one GGUF model and at most one projector "
            f"(GGUF files found: {found})"
        )
    return models[0], projectors[0] if projectors else None

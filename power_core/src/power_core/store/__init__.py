"""Where models live: content-addressed blobs and named manifests (Ollama's layout)."""

from power_core.store.base import (
    ModelStore,
    PartialDownload,
    StoredBlob,
    StoredManifest,
    StoreFactory,
)
from power_core.store.local import InsufficientStorage, LocalStore
from power_core.store.manifest import Layer, Manifest, ModelConfig

__all__ = [
    "InsufficientStorage",
    "Layer",
    "LocalStore",
    "Manifest",
    "ModelConfig",
    "ModelStore",
    "PartialDownload",
    "StoreFactory",
    "StoredBlob",
    "StoredManifest",
]

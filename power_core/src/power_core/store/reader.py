"""Reading stored models: names to manifests, manifests to what a model is.

Every request resolves its model, and clients poll the model list; so what a manifest
says is remembered. Blobs are content-addressed and never change, so a GGUF header, a
config blob or a resolution (keyed by the manifest's digest and time) stays true until
the manifest is rewritten.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from power_core.chat.go_template.chat_template import go_template_problem
from power_core.chat.template_syntax import is_go_template
from power_core.errors import BlobNotFound, InvalidModelFile, ModelNotFound
from power_core.gguf import GGUFInfo, read_gguf_info
from power_core.modelfile import format_parameters, render_modelfile
from power_core.models import ModelDescription, ModelSummary, ResolvedModel
from power_core.names import ModelRef, is_model_name
from power_core.store.base import ModelStore, StoredManifest
from power_core.store.builder import MAX_TEXT_LAYER
from power_core.store.layers import capabilities_for, details_for, load_messages, load_parameters
from power_core.store.manifest import Manifest, ModelConfig
from power_core.types import ChatMessage

_TEXT_KINDS = ("template", "system", "license", "params", "messages")
_GGUF_CACHE_SIZE = 64
_RESOLUTION_CACHE_SIZE = 64
_CONFIG_CACHE_SIZE = 256
_CONFIG_CACHE_BLOB_BYTES = 64 << 10

#: a resolved model and what ``describe`` needs beside it (licenses, the GGUF header)
Resolution = tuple[ResolvedModel, dict[str, Any]]


class ModelReader:
    """What the models of a store are, read through caches that never go stale."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store
        self._gguf: OrderedDict[str, GGUFInfo] = OrderedDict()
        #: (manifest digest, name, modified) -> resolution
        self._resolutions: OrderedDict[tuple[str, str, datetime], Resolution] = OrderedDict()
        #: config blobs by digest: listing models then reads no blob
        self._config_blobs: OrderedDict[str, bytes] = OrderedDict()

    def summaries(self) -> list[ModelSummary]:
        """Every model, most recently modified first."""
        summaries = []
        for stored in self.store.list_manifests():
            config = self.config(stored.manifest)
            summaries.append(
                ModelSummary(
                    name=stored.ref.display,
                    digest=stored.digest,
                    size=stored.manifest.total_size,
                    modified_at=stored.modified_at,
                    details=details_for(config, None),
                )
            )
        summaries.sort(key=lambda s: s.modified_at, reverse=True)
        return summaries

    def stored(self, name: str) -> StoredManifest:
        """The manifest of model ``name``; raises :class:`ModelNotFound`."""
        stored = self.store.read_manifest(ModelRef.parse(name))
        if stored is None:
            raise ModelNotFound(name)
        return stored

    def exists(self, name: str) -> bool:
        """Whether a model of that name is in the store (invalid names are not)."""
        return is_model_name(name) and self.store.read_manifest(ModelRef.parse(name)) is not None

    def resolved(self, stored: StoredManifest) -> Resolution:
        """The model a manifest describes. The result is shared between callers, who must
        not change it."""
        key = (stored.digest, stored.ref.display, stored.modified_at)
        cached = self._resolutions.get(key)
        if cached is not None:
            # the texts were read already and cannot change; the weights must still be there
            self.layer_path(stored.ref.display, cached[0].model_digest)
            self._resolutions.move_to_end(key)
            return cached
        resolution = self._resolve_layers(stored)
        self._resolutions[key] = resolution
        while len(self._resolutions) > _RESOLUTION_CACHE_SIZE:
            self._resolutions.popitem(last=False)
        return resolution

    def _resolve_layers(self, stored: StoredManifest) -> Resolution:
        manifest, display = stored.manifest, stored.ref.display
        weights = manifest.layer("model")
        if weights is None:
            raise InvalidModelFile(f"model '{display}' has no model layer")
        path = self.layer_path(display, weights.digest)
        info = self.gguf_info(weights.digest, path)
        config = self.config(manifest)
        texts = {kind: self.texts(display, manifest, kind) for kind in _TEXT_KINDS}
        parameters = load_parameters(display, texts["params"])
        template = texts["template"][-1] if texts["template"] else info.chat_template
        projector = manifest.layer("projector")
        model = ResolvedModel(
            name=display,
            digest=stored.digest,
            model_path=path,
            model_digest=weights.digest,
            format=config.model_format or "gguf",
            size=manifest.total_size,
            modified_at=stored.modified_at,
            details=details_for(config, info),
            template=template,
            system=texts["system"][-1] if texts["system"] else None,
            parameters=parameters,
            license="\n".join(texts["license"]) if texts["license"] else None,
            messages=[
                ChatMessage(role=role, content=content)  # type: ignore[arg-type]
                for role, content in load_messages(display, texts["messages"])
            ],
            metadata=dict(info.metadata),
            # what the prompts use: a Go template that cannot run is kept but gives way
            capabilities=capabilities_for(
                info,
                info.chat_template if template and _unrunnable(template) else template,
                manifest,
            ),
            adapters=[
                self.layer_path(display, layer.digest) for layer in manifest.layers_of("adapter")
            ],
            projector=self.layer_path(display, projector.digest) if projector else None,
        )
        extras = {"licenses": texts["license"], "info": info}
        return model, extras

    def describe(self, name: str, verbose: bool = False) -> ModelDescription:
        """What ``show`` prints: the resolved model, its Modelfile, parameters and GGUF info.

        Without ``verbose`` large arrays (token lists) appear as ``None``; with it they are
        read from the file in full.
        """
        model, extras = self.resolved(self.stored(name))
        # read afresh: the cached header keeps no tensor list (nor, unless verbose, arrays)
        info = read_gguf_info(model.model_path, include_large_arrays=verbose)
        model_info = _described_info(model.model_path, verbose, info)
        modelfile = render_modelfile(
            name=model.name,
            from_=str(model.model_path),
            template=model.template,
            system=model.system,
            parameters=model.parameters,
            licenses=extras["licenses"],
            messages=[(m.role, m.content) for m in model.messages],
            adapters=[str(path) for path in model.adapters],
            projector=str(model.projector) if model.projector else None,
        )
        return ModelDescription(
            model=model,
            modelfile=modelfile,
            parameters_text=format_parameters(model.parameters),
            model_info=model_info,
            projector_info=_described_info(model.projector, verbose) if model.projector else None,
            tensors=[(t.name, t.type_name, t.shape) for t in info.tensors],
        )

    def layer_path(self, display: str, digest: str) -> Path:
        """The file of a layer of model ``display``; a missing one says the model is
        damaged."""
        try:
            return self.store.blob_path(digest)
        except BlobNotFound:
            raise BlobNotFound(
                f"model '{display}' is damaged: layer {digest} is missing; pull or create it again"
            ) from None

    def gguf_info(self, digest: str, path: Path) -> GGUFInfo:
        """The header of the GGUF blob ``digest`` at ``path``, parsed once."""
        info = self._gguf.get(digest)
        if info is None:
            info = self.remember_gguf_info(digest, read_gguf_info(path))
        return info

    def remember_gguf_info(self, digest: str, info: GGUFInfo) -> GGUFInfo:
        """Keep a header already parsed (a pull reads it while downloading)."""
        info = replace(info, tensors=[])  # not needed after the checks; keeps the cache small
        self._gguf[digest] = info
        while len(self._gguf) > _GGUF_CACHE_SIZE:
            self._gguf.popitem(last=False)
        return info

    def config(self, manifest: Manifest) -> ModelConfig:
        """The manifest's config blob; an empty config when it is missing or unreadable."""
        digest = manifest.config.digest
        raw = self._config_blobs.get(digest)
        if raw is not None:
            self._config_blobs.move_to_end(digest)
        else:
            try:
                raw = self.store.read_blob_bytes(digest, max_size=MAX_TEXT_LAYER)
            except (BlobNotFound, InvalidModelFile, OSError):  # OSError: unreadable
                return ModelConfig()
            if len(raw) <= _CONFIG_CACHE_BLOB_BYTES:  # a config is a few hundred bytes
                self._config_blobs[digest] = raw
                while len(self._config_blobs) > _CONFIG_CACHE_SIZE:
                    self._config_blobs.popitem(last=False)
        return ModelConfig.from_bytes(raw)

    def texts(self, display: str, manifest: Manifest, kind: str) -> list[str]:
        """The text layers of one ``kind`` (``template``, ``system``, ``params``...)."""
        texts = []
        for layer in manifest.layers_of(kind):
            self.layer_path(display, layer.digest)
            raw = self.store.read_blob_bytes(layer.digest, max_size=MAX_TEXT_LAYER)
            texts.append(raw.decode("utf-8", errors="replace"))
        return texts


def _described_info(path: Path, verbose: bool, info: GGUFInfo | None = None) -> dict[str, Any]:
    """A GGUF's metadata as ``show`` gives it: large arrays as ``None`` unless ``verbose``,
    and the parameter count."""
    if info is None:
        info = read_gguf_info(path, include_large_arrays=verbose)
    described: dict[str, Any] = dict(info.metadata)
    for key in info.large_arrays:
        described[key] = None
    described["general.parameter_count"] = info.parameter_count
    return dict(sorted(described.items()))


def _unrunnable(template: str) -> bool:
    """Whether ``template`` is a Go template this server cannot run (prompts then use the
    GGUF's own template)."""
    return is_go_template(template) and go_template_problem(template) is not None

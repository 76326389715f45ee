"""Writing a created model: ``create`` and ``import`` from a GGUF file, an uploaded blob or
another model, with new text layers (template, system, parameters, messages), optionally
quantizing the weights first (:mod:`power_core.quantize`).

:class:`~power_core.library.ModelLibrary` checks the request and calls this; the weights are
copied (or quantized) outside the store's write lock, and the manifest written last under it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from power_core.adapters import AdapterSource, check_adapter, is_adapter
from power_core.chat.go_template.chat_template import go_template_problem
from power_core.chat.template_syntax import go_template_note, is_go_template
from power_core.concurrency import run_on_native_thread
from power_core.engine import Backend
from power_core.errors import (
    BlobNotFound,
    InvalidModelFile,
    InvalidRequest,
    UnsupportedFeature,
)
from power_core.gguf import GGUFInfo, check_gguf_magic, read_gguf_info
from power_core.names import ModelRef
from power_core.projectors import ProjectorSource, check_projector, check_weights, is_projector
from power_core.quantize import plan_quantizing, quantize_weights
from power_core.sources import ProgressCallback, PullProgress
from power_core.split_joining import join_into_store
from power_core.split_models import (
    SplitPart,
    part_names,
    part_number,
    read_parts,
    refuse_later_part,
    refuse_split,
    split_part,
)
from power_core.store.base import ModelStore, StoredBlob
from power_core.store.builder import LayerChanges, build_manifest
from power_core.store.digests import normalize_digest
from power_core.store.layers import load_parameters
from power_core.store.manifest import Manifest
from power_core.store.pins import pinning
from power_core.store.reader import ModelReader
from power_core.store.replacing import collect_replaced, current_digests
from power_core.types import LoadOptions

log = logging.getLogger(__name__)


class ModelCreator:
    """Creates models in ``store``; ``backends`` are asked only when a create quantizes or
    adds adapters."""

    def __init__(
        self, store: ModelStore, reader: ModelReader, backends: Callable[[], Iterable[Backend]]
    ) -> None:
        self.store = store
        self.reader = reader
        self._backends = backends
        #: scratch files of quantizings under way, removed by discard_scratch at shutdown
        self._scratch: set[Path] = set()

    def discard_scratch(self) -> None:
        """Remove the scratch files of quantizings still under way: at shutdown, their
        requests are abandoned with the process, and a model's weights are gigabytes."""
        for path in list(self._scratch):
            with suppress(OSError):
                path.unlink()

    def uploaded_gguf(
        self, files: dict[str, str]
    ) -> tuple[list[tuple[str, StoredBlob]], list[AdapterSource], ProjectorSource | None]:
        """The model among ``files`` (file names to digests of uploaded blobs): its one GGUF,
        or the parts of a split model in order (see :meth:`join_uploaded`); and the LoRA
        adapters and the multimodal projector among them, which Ollama takes in ``files``
        too."""
        if not isinstance(files, dict) or not files:
            raise InvalidRequest("'files' must map file names to blob digests", param="files")
        ggufs: list[tuple[str, StoredBlob, GGUFInfo]] = []
        adapters: list[AdapterSource] = []
        projectors: list[ProjectorSource] = []
        for filename, blob in self.uploaded_blobs(files, "files").items():
            info = self.reader.gguf_info(blob.digest, self.store.blob_path(blob.digest))
            if is_adapter(info):
                adapters.append(AdapterSource(filename, blob))
            elif is_projector(info):
                projectors.append(ProjectorSource(filename, blob))
            else:
                ggufs.append((filename, blob, info))
        if not ggufs:
            raise InvalidRequest("'files' holds adapters or projectors but no model", param="files")
        if len(projectors) > 1:
            raise InvalidRequest("'files' holds more than one projector", param="files")
        if len(ggufs) > 1:
            parts = [split_part(info) for _, _, info in ggufs]
            if any(part is None or part.count != len(ggufs) for part in parts):
                raise UnsupportedFeature(
                    "only one GGUF file per model is supported, or every part of one split model",
                    param="files",
                )
            ggufs.sort(key=lambda gguf: part_number(gguf[2]))
        weights = [(filename, blob) for filename, blob, _ in ggufs]
        return weights, adapters, projectors[0] if projectors else None

    def join_uploaded(
        self, parts: list[tuple[str, StoredBlob]], progress: ProgressCallback
    ) -> StoredBlob:
        """The uploaded parts of a split model (file names and blobs, in order) joined into
        one blob; one uploaded GGUF as it is."""
        if len(parts) == 1:
            return parts[0][1]
        with pinning(self.store) as pin:
            for filename, blob in parts:
                pin(blob.digest)
                if not self.store.has_blob(blob.digest):
                    raise BlobNotFound(
                        f"blob {blob.digest} for '{filename}' not found; upload it first",
                        param="files",
                    )
            paths = [self.store.blob_path(blob.digest) for _, blob in parts]
            infos = read_parts(paths, [filename for filename, _ in parts])
            return join_into_store(self.store, paths, infos, progress)

    def uploaded_blobs(self, files: dict[str, str], param: str) -> dict[str, StoredBlob]:
        """The uploaded GGUF blobs that ``files`` (file names to digests) names."""
        blobs: dict[str, StoredBlob] = {}
        for filename, digest in files.items():
            if not isinstance(digest, str):
                raise InvalidRequest(
                    f"'{param}' must map file names to blob digests (strings); "
                    f"'{filename}' does not",
                    param=param,
                )
            if not self.store.has_blob(digest):
                raise BlobNotFound(
                    f"blob {digest} for '{filename}' not found; upload it first", param=param
                )
            path = self.store.blob_path(digest)
            with open(path, "rb") as handle:
                head = handle.read(8)
            if not check_gguf_magic(head):
                kind = "adapters" if param == "adapters" else "models"
                raise UnsupportedFeature(
                    f"'{filename}' is not a GGUF file; only GGUF {kind} are supported",
                    param=param,
                )
            blobs[filename] = StoredBlob(normalize_digest(digest), path.stat().st_size)
        return blobs

    def create(
        self,
        name: str,
        from_: str | None,
        source: Path | StoredBlob | None,
        changes: LayerChanges,
        progress: ProgressCallback,
        quantize: str | None = None,
        adapters: Sequence[AdapterSource] = (),
        projector: ProjectorSource | None = None,
    ) -> str:
        """Create model ``name`` (see :meth:`ModelLibrary.create`). The first part of a
        split model's files is joined with the others first; the joined blob is pinned
        until the model holds it, and goes if the create fails (or quantizing replaced it)."""
        joined: list[str] = []
        try:
            with pinning(self.store) as pin:
                return self._create(
                    name,
                    from_,
                    source,
                    changes,
                    progress,
                    quantize,
                    adapters,
                    projector,
                    _Joins(pin, joined),
                )
        finally:
            if joined:
                self.store.gc(joined)  # kept where the model references it

    def _create(
        self,
        name: str,
        from_: str | None,
        source: Path | StoredBlob | None,
        changes: LayerChanges,
        progress: ProgressCallback,
        quantize: str | None,
        adapters: Sequence[AdapterSource],
        projector: ProjectorSource | None,
        joins: _Joins,
    ) -> str:
        ref = ModelRef.parse(name)
        changes.text_layers()  # refuse a text too large before copying anything
        self._refuse_unloadable(changes.parameters)
        # refused before the first report: a surface still answers with its own status
        job = None
        if source is not None or quantize is not None or adapters or projector:
            # named as the request named them: never the store's own files
            named = str(source) if isinstance(source, Path) else None
            # a bad file is refused before gigabytes of it are copied
            path, info = self._weights_file(from_, source)
            part = split_part(info)
            if isinstance(source, Path) and part is not None:
                source = self._joined(source, part, progress, joins)
                path, info = self._weights_file(from_, source)
            label = from_ or named or f"blob {path.name}"
            check_weights(label, info)
            refuse_split(label, info)
            self._check_adapters(from_ or path.name, path, info, adapters)
            if projector is not None:
                check_projector(projector.label, self._projector_info(projector))
            self._refuse_what_aborts(label, path, projector)
            if quantize is not None:
                job = plan_quantizing(path, info, quantize, self._backends())
        problem = (
            go_template_problem(changes.template)
            if changes.template is not None and is_go_template(changes.template)
            else None
        )
        if problem is not None:
            # kept, as Ollama's Modelfiles carry one; but say it shapes nothing here
            note = go_template_note(problem)
            log.warning("model %s: %s", name, note)
            progress(PullProgress(status=f"warning: {note}"))
        with ExitStack() as scratch:
            quantized: Path | None = None
            if job is not None:
                # outside the write lock: a long quantizing must not hold up a delete
                quantized = scratch.enter_context(self._scratch_file())
                quantize_weights(job, quantized, progress)
            return self._write_model(
                ref, from_, source, quantized, adapters, projector, changes, progress, joins.digests
            )

    @contextmanager
    def _scratch_file(self) -> Iterator[Path]:
        scratch_file = getattr(self.store, "scratch_file", None)
        if scratch_file is None:  # a store plugin written before quantizing existed
            raise UnsupportedFeature(
                f"the {type(self.store).__name__} store has no scratch files to quantize in",
                param="quantize",
            )
        with scratch_file("quantize") as path:
            self._scratch.add(path)
            try:
                yield path
            finally:
                self._scratch.discard(path)

    def _check_adapters(
        self, label: str, weights: Path, info: GGUFInfo, adapters: Sequence[AdapterSource]
    ) -> None:
        """Refuse weights that are an adapter, and adapters that do not fit the weights."""
        if is_adapter(info):
            raise InvalidRequest(
                f"{label} is a LoRA adapter, not a model: create FROM the model it was "
                "trained on, with the adapter as an ADAPTER (or 'adapters')",
                param="from",
            )
        if adapters:
            # read again whole: the reader's cached headers leave the tensors out
            weights_info = read_gguf_info(weights)
            for adapter in adapters:
                check_adapter(
                    adapter.label, self._adapter_info(adapter), weights_info, self._backends()
                )

    def _adapter_info(self, adapter: AdapterSource) -> GGUFInfo:
        source = adapter.source
        try:
            if isinstance(source, Path):
                return read_gguf_info(source)
            return read_gguf_info(self.store.blob_path(source.digest))
        except InvalidModelFile as exc:
            message = f"adapter '{adapter.label}': {exc.message}"
            raise InvalidRequest(message, param="adapters") from None

    def _joined(
        self, path: Path, part: SplitPart, progress: ProgressCallback, joins: _Joins
    ) -> StoredBlob:
        """The blob the split model whose part ``path`` is joins into, with the parts
        beside it (checked first: a later, missing or foreign part is refused)."""
        refuse_later_part(str(path), part)
        paths = [path.with_name(name) for name in part_names(path.name, part.count)]
        infos = read_parts(paths, [str(p) for p in paths])
        joined = join_into_store(self.store, paths, infos, progress)
        joins.keep(joined)
        if not self.store.has_blob(joined.digest):  # collected before its pin: once more
            joined = join_into_store(self.store, paths, infos, progress)
        return joined

    def _weights_file(
        self, from_: str | None, source: Path | StoredBlob | None
    ) -> tuple[Path, GGUFInfo]:
        """The file of the weights a create starts from, and its header."""
        if isinstance(source, Path):
            return source, read_gguf_info(source)
        if from_ is not None:
            layer = self.reader.stored(from_).manifest.layer("model")
            if layer is None:
                raise InvalidModelFile(f"model '{from_}' has no model layer")
            digest = layer.digest
        else:
            assert source is not None
            digest = source.digest
        path = self.store.blob_path(digest)
        return path, self.reader.gguf_info(digest, path)

    def _write_model(
        self,
        ref: ModelRef,
        from_: str | None,
        source: Path | StoredBlob | None,
        quantized: Path | None,
        adapters: Sequence[AdapterSource],
        projector: ProjectorSource | None,
        changes: LayerChanges,
        progress: ProgressCallback,
        joined: Sequence[str] = (),
    ) -> str:
        base: Manifest | None = None
        base_parameters: dict[str, Any] = {}
        with self.store.write_lock():
            if from_ is not None:
                stored = self.reader.stored(from_)
                base = stored.manifest
                weights_layer = base.layer("model")
                if weights_layer is None:
                    raise InvalidModelFile(f"model '{from_}' has no model layer")
                weights = StoredBlob(weights_layer.digest, weights_layer.size)
                base_parameters = load_parameters(
                    from_, self.reader.texts(stored.ref.display, base, "params")
                )
            if quantized is not None:
                # hashed and moved into the blobs (not copied: gigabytes for a large model),
                # off the server's thread
                new = quantized
                weights = run_on_native_thread(
                    lambda: self.store.keep_scratch(new), "a3s-power-store-quantized"
                )
            elif isinstance(source, Path):
                weights = self._copy_in(source, progress)
            elif source is not None:
                weights = source
            info = self.reader.gguf_info(weights.digest, self.store.blob_path(weights.digest))
            created = isinstance(source, Path) or quantized is not None or weights.digest in joined
            verb = "creating new layer" if created else "using existing layer"
            progress(PullProgress(status=f"{verb} {weights.digest}"))
            adapter_blobs = [self._adapter_blob(adapter, progress) for adapter in adapters]
            projector_blob = self._attached_blob(projector.source, progress) if projector else None
            manifest = build_manifest(
                self.store,
                weights=weights,
                adapters=adapter_blobs,
                projector=projector_blob,
                info=info,
                base=base,
                base_parameters=base_parameters,
                changes=changes,
                progress=progress,
            )
            progress(PullProgress(status="writing manifest"))
            replaced = current_digests(self.store, ref)
            self.store.write_manifest(ref, manifest)
        collect_replaced(self.store, replaced, manifest)
        progress(PullProgress(status="success"))
        return ref.display

    def _adapter_blob(self, adapter: AdapterSource, progress: ProgressCallback) -> StoredBlob:
        return self._attached_blob(adapter.source, progress, "adapter")

    def _attached_blob(
        self, source: Path | StoredBlob, progress: ProgressCallback, kind: str = "projector"
    ) -> StoredBlob:
        """An adapter's or projector's blob: stored already, or copied in now."""
        if isinstance(source, StoredBlob):
            progress(PullProgress(status=f"using existing layer {source.digest}"))
            return source
        blob = self._copy_in(source, progress, f"transferring {kind} data")
        progress(PullProgress(status=f"creating new layer {blob.digest}"))
        return blob

    def _refuse_unloadable(self, parameters: dict[str, Any]) -> None:
        """Refuse a load parameter a backend could never load with (``num_thread
        100000``): every request to the model would fail. One the load leaves out anyway
        (``num_thread 0``, Ollama's "automatic") is kept, as Ollama's Modelfiles carry it."""
        from power_core.scheduler import LOAD_OPTION_TYPES, checked_load_option

        for key, value in parameters.items():
            if key not in LOAD_OPTION_TYPES:
                continue
            try:
                options = replace(LoadOptions(), **{key: checked_load_option(key, value)})
            except InvalidRequest:
                continue
            for backend in self._backends():
                check = getattr(backend, "check_options", None)
                if check is not None:
                    check(options)

    def _refuse_what_aborts(
        self, label: str, weights: Path, projector: ProjectorSource | None
    ) -> None:
        """Refuse files a backend knows would abort its process at load (its optional
        ``weights_problem`` and ``projector_problem``): a 400 now, not a dead server later."""
        for backend in self._backends():
            problem = getattr(backend, "weights_problem", None)
            # it may read the whole vocabulary: off the server's thread
            reason = (
                run_on_native_thread(functools.partial(problem, weights), "a3s-power-check")
                if problem is not None
                else None
            )
            if reason:
                raise InvalidRequest(f"{label}: {reason}", param="from")
            problem = getattr(backend, "projector_problem", None)
            if projector is None or problem is None:
                continue
            source = projector.source
            path = source if isinstance(source, Path) else self.store.blob_path(source.digest)
            reason = problem(path)
            if reason:
                raise InvalidRequest(f"projector '{projector.label}': {reason}")

    def _projector_info(self, projector: ProjectorSource) -> GGUFInfo:
        source = projector.source
        try:
            if isinstance(source, Path):
                return read_gguf_info(source)
            return self.reader.gguf_info(source.digest, self.store.blob_path(source.digest))
        except InvalidModelFile as exc:
            raise InvalidRequest(f"projector '{projector.label}': {exc.message}") from None

    def _copy_in(
        self, path: Path, progress: ProgressCallback, status: str = "transferring model data"
    ) -> StoredBlob:
        total = path.stat().st_size

        def report(done: int) -> None:
            progress(PullProgress(status, total=total, completed=done))

        report(0)
        return self.store.put_blob_file(path, progress=report)


@dataclass(frozen=True)
class _Joins:
    """A create's joined blobs: pinned while it runs, collected after unless it used them."""

    pin: Callable[[str], None]
    digests: list[str]

    def keep(self, blob: StoredBlob) -> None:
        self.pin(blob.digest)
        self.digests.append(blob.digest)

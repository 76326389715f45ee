"""The model library: every model operation (list, show, create, copy, delete, pull, push).

CLI commands and API surfaces call this and nothing below it. It reads models through a
:class:`~power_core.store.reader.ModelReader` over the configured
:class:`~power_core.store.base.ModelStore`, checks every GGUF with :mod:`power_core.gguf`
before storing it, and downloads through the registered
:class:`~power_core.sources.ModelSource` plugins.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from power_core.adapters import AdapterSource
from power_core.engine import Backend
from power_core.errors import (
    BlobNotFound,
    DigestMismatch,
    InvalidRequest,
    ModelNotFound,
    PullFailed,
    StoreUnavailable,
    UnsupportedFeature,
)
from power_core.model_creation import ModelCreator
from power_core.modelfile import (
    coerce_parameter,
    parse_modelfile,
)
from power_core.models import ModelDescription, ModelSummary, ResolvedModel
from power_core.names import ModelRef, is_model_name
from power_core.projectors import ProjectorSource, gguf_files_in
from power_core.pull.inflight import InflightDownloads
from power_core.quantize import parse_quantize_type
from power_core.sources import FetchedBlob, ModelSource, ProgressCallback, PullProgress
from power_core.store.base import ModelStore, StoredBlob
from power_core.store.builder import LayerChanges
from power_core.store.digests import normalize_digest
from power_core.store.layers import (
    looks_like_path,
    message_pairs,
)
from power_core.store.reader import ModelReader
from power_core.store.replacing import collect_replaced, current_digests
from power_core.types import ChatMessage

log = logging.getLogger(__name__)


def _ignore(_: PullProgress) -> None:
    pass


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _adapter_file(base_dir: Path, text: str, line: int) -> AdapterSource:
    """A Modelfile ``ADAPTER``: a GGUF LoRA file, relative to the Modelfile's folder."""
    path = (base_dir / Path(text).expanduser()).resolve()
    if path.is_dir():
        raise UnsupportedFeature(
            f"line {line}: ADAPTER {text} is a folder; only GGUF LoRA adapters are supported "
            "(llama.cpp's convert_lora_to_gguf.py converts a safetensors adapter)",
            param="adapters",
        )
    if not path.is_file():
        raise InvalidRequest(f"line {line}: ADAPTER file not found: {text}", param="adapters")
    return AdapterSource(text, path)


def _projector_file(base_dir: Path, text: str, line: int) -> ProjectorSource:
    """A Modelfile's second ``FROM``: a projector's GGUF, relative to the Modelfile."""
    path = (base_dir / Path(text).expanduser()).resolve()
    if not path.is_file():
        raise InvalidRequest(
            f"line {line}: FROM file not found: {text} (a second FROM names the model's "
            "projector GGUF)"
        )
    return ProjectorSource(f"line {line}: FROM {text}", path)


def _store_refusals(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """``method`` with an OSError on a file of the store (a lock file in a ``models_dir``
    that is not a folder, a full or read-only disk) raised as :class:`StoreUnavailable`:
    the machine's refusal, reported as such on every surface rather than as a crash."""

    @functools.wraps(method)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except OSError as exc:
            root = getattr(getattr(args[0], "store", None), "root", None)
            if root is None or not str(exc.filename or "").startswith(str(root)):
                raise  # not a file of the store (a socket, a Modelfile's FROM file)
            raise StoreUnavailable(f"the model store cannot be used: {exc}") from exc

    return run


class ModelLibrary:
    """Models in a store, and the sources that can add more."""

    def __init__(
        self,
        store: ModelStore,
        sources: Iterable[ModelSource] = (),
        backends: Callable[[], Iterable[Backend]] = tuple,
    ) -> None:
        self.store = store
        self.sources = list(sources)
        self.reader = ModelReader(store)
        #: writes created models; asks the backends only when a create quantizes
        self._creator = ModelCreator(store, self.reader, backends)
        self._downloads: InflightDownloads[FetchedBlob] = InflightDownloads()

    def close(self) -> None:
        """At shutdown: remove what creates still under way were writing."""
        self._creator.discard_scratch()

    # ------------------------------------------------------------------ reading
    def list_models(self) -> list[ModelSummary]:
        """Every model, most recently modified first."""
        return self.reader.summaries()

    def exists(self, name: str) -> bool:
        """Whether a model of that name is in the store (invalid names are not)."""
        return self.reader.exists(name)

    def resolve(self, name: str) -> ResolvedModel:
        """Everything needed to load and prompt a model; raises ModelNotFound.

        ``template`` is the model's TEMPLATE layer, or else the GGUF's own
        ``tokenizer.chat_template``. Capabilities follow Ollama: ``embedding`` for
        embedding-only models, ``completion`` for the rest, plus ``tools`` (the template
        mentions tools), ``insert`` (fill-in-the-middle tokens), ``vision`` and
        ``thinking``. As in Ollama, a completion model is not listed as ``embedding``.
        The result is shared between callers, who must not change it.
        """
        return self.reader.resolved(self.reader.stored(name))[0]

    def describe(self, name: str, verbose: bool = False) -> ModelDescription:
        """What ``show`` prints: the resolved model, its Modelfile, parameters and GGUF info
        (large arrays, such as token lists, in full only with ``verbose``)."""
        return self.reader.describe(name, verbose)

    # ------------------------------------------------------------------ writing
    @_store_refusals
    def create_from_modelfile(
        self,
        name: str,
        text: str,
        base_dir: Path,
        progress: ProgressCallback = _ignore,
        quantize: str | None = None,
    ) -> str:
        """Create ``name`` from Modelfile text; ``FROM`` is a model name or a GGUF path and
        each ``ADAPTER`` a GGUF LoRA adapter's path (relative to ``base_dir``). Meant for
        the CLI: it reads local files. ``quantize`` is as in :meth:`create`; the file is
        then quantized, never copied whole."""
        ModelRef.parse(name)
        file_type = parse_quantize_type(quantize) if quantize else None
        progress(PullProgress(status="parsing modelfile"))
        parsed = parse_modelfile(text)
        changes = LayerChanges(
            template=parsed.template,
            system=parsed.system,
            parameters=parsed.parameters,
            licenses=parsed.licenses or None,
            messages=parsed.messages or None,
        )
        adapters = [_adapter_file(base_dir, text, line) for text, line in parsed.adapters]
        projector = _projector_file(base_dir, *parsed.projector) if parsed.projector else None
        source = parsed.from_
        path = (base_dir / Path(source).expanduser()).resolve()
        if path.is_dir():  # the model's GGUF and its projector's, as Ollama takes them
            path, found = gguf_files_in(path)
            if found is not None and projector is None:
                projector = ProjectorSource(str(found), found)
        if path.is_file():
            return self._creator.create(
                name, None, path, changes, progress, file_type, adapters, projector
            )
        if looks_like_path(source) or not is_model_name(source):
            raise InvalidRequest(f"line {parsed.from_line}: FROM file not found: {source}")
        return self._creator.create(
            name, source, None, changes, progress, file_type, adapters, projector
        )

    @_store_refusals
    def create(
        self,
        name: str,
        *,
        from_: str | None = None,
        files: dict[str, str] | None = None,
        template: str | None = None,
        system: str | None = None,
        parameters: dict[str, Any] | None = None,
        license: str | list[str] | None = None,
        messages: list[ChatMessage] | list[dict[str, Any]] | None = None,
        quantize: str | None = None,
        adapters: dict[str, str] | None = None,
        progress: ProgressCallback = _ignore,
    ) -> str:
        """Ollama's JSON create: ``from_`` an existing model, or ``files`` mapping file
        names to digests of blobs already uploaded (one GGUF model, and any LoRA adapters).
        ``adapters`` maps file names to digests of uploaded GGUF LoRA adapters, applied on
        top of the weights (after any the ``from_`` model has). Returns the model's name.

        ``quantize`` (``q4_K_M``, ``q8_0``, ...: :data:`~power_core.quantize.QUANTIZE_TYPES`)
        quantizes F32, F16 or BF16 weights with the first backend that can, and the new
        weights replace the old in the model; what the request gets wrong (the type, weights
        already quantized, no backend that can) is refused before the first report.
        """
        ModelRef.parse(name)
        file_type = parse_quantize_type(quantize) if quantize else None
        if (from_ is None) == (files is None):
            raise InvalidRequest("give exactly one of 'from' and 'files'", param="from")
        changes = LayerChanges(
            template=template,
            system=system,
            parameters={k: coerce_parameter(k, v) for k, v in (parameters or {}).items()},
            licenses=[license] if isinstance(license, str) else license,
            messages=message_pairs(messages) if messages is not None else None,
        )
        added = [
            AdapterSource(filename, blob)
            for filename, blob in self._creator.uploaded_blobs(adapters or {}, "adapters").items()
        ]
        if files is not None:
            weights, in_files, projector = self._creator.uploaded_gguf(files)
            uploaded = self._creator.join_uploaded(weights, progress)
            try:
                created = self._creator.create(
                    name,
                    None,
                    uploaded,
                    changes,
                    progress,
                    file_type,
                    [*in_files, *added],
                    projector,
                )
            finally:
                if len(weights) > 1:  # the joined blob: no model's if the create failed
                    self.store.gc([uploaded.digest])
            if len(weights) > 1:  # the uploaded parts are in the model, joined
                self.store.gc([blob.digest for _, blob in weights])
            return created
        return self._creator.create(name, from_, None, changes, progress, file_type, added)

    @_store_refusals
    def import_gguf(self, path: Path, name: str, progress: ProgressCallback = _ignore) -> str:
        """Copy a GGUF file into the store as model ``name``."""
        ModelRef.parse(name)
        return self._creator.create(name, None, Path(path), LayerChanges(), progress)

    @_store_refusals
    def copy(self, source: str, destination: str) -> str:
        """Copy a model under a new name (the same blobs); returns the new name."""
        dst = ModelRef.parse(destination)
        with self.store.write_lock():
            stored = self.reader.stored(source)
            replaced = current_digests(self.store, dst)
            self.store.write_manifest(dst, stored.manifest)
        collect_replaced(self.store, replaced, stored.manifest)
        return dst.display

    @_store_refusals
    def delete(self, name: str) -> list[str]:
        """Delete a model and the blobs only it used; returns the removed digests."""
        try:
            return self.store.delete_manifest(ModelRef.parse(name))
        except ModelNotFound:
            raise ModelNotFound(name) from None

    # ------------------------------------------------------------------ pulling
    def source_for(self, reference: str) -> ModelSource:
        """The first source that handles ``reference``; raises a clear error if none."""
        for source in self.sources:
            if source.handles(reference):
                return source
        if "://" not in reference and looks_like_path(reference.strip()):
            raise InvalidRequest(
                f"cannot pull '{reference}': pull takes a model name or an http(s) URL; "
                "import a local GGUF file with `create` (Modelfile: FROM <path>)",
                param="model",
            )
        if "://" not in reference:
            # what no source takes and is no URL was meant as a model name: say what is
            # wrong with it, as cp and create do
            ModelRef.parse(reference)
        raise InvalidRequest(f"no model source understands '{reference}'", param="model")

    @_store_refusals
    def pull(
        self,
        reference: str,
        *,
        name: str | None = None,
        expected_digest: str | None = None,
        progress: ProgressCallback = _ignore,
        insecure: bool = False,
    ) -> str:
        """Download a model and store it under ``name`` (default: from the file name).
        ``insecure`` allows plain HTTP to registries and unverified TLS (Ollama's option).

        Concurrent pulls of the same reference in this process share one download.
        Progress follows Ollama: ``pulling manifest``, ``pulling <id>`` with ``total``
        and ``completed``, ``verifying sha256 digest``, ``writing manifest``, ``success``.
        """
        if not isinstance(reference, str) or not reference.strip():
            raise InvalidRequest("nothing to pull: the reference is empty", param="model")
        reference = reference.strip()
        target = ModelRef.parse(name) if name else None
        expected = normalize_digest(expected_digest) if expected_digest else None
        source = self.source_for(reference)
        check = getattr(source, "check", None)  # optional: a reference it cannot fetch
        if check is not None:
            check(reference)
        progress(PullProgress(status="pulling manifest"))

        def work(emit: ProgressCallback) -> FetchedBlob:
            return source.fetch(
                reference, self.store, emit, expected_digest=expected, insecure=insecure
            )

        # one download for every spelling of a model name (smollm2, library/smollm2:latest)
        shared = ModelRef.parse(reference).full if is_model_name(reference) else reference
        fetched = self._downloads.run(f"{source.name}\0{shared}", work, progress)
        if expected is not None and fetched.digest != expected:
            raise DigestMismatch(
                f"{reference} has digest {fetched.digest}, expected {expected}", param="digest"
            )
        try:
            return self._store_pulled(target, fetched, progress)
        except BlobNotFound:
            # A delete took a blob this pull found stored before its manifest referenced
            # it; fetching again downloads what is missing, once.
            fetched = self._downloads.run(f"{source.name}\0{shared}", work, progress)
            return self._store_pulled(target, fetched, progress)

    def _store_pulled(
        self, target: ModelRef | None, fetched: FetchedBlob, progress: ProgressCallback
    ) -> str:
        ref = target or ModelRef.parse(fetched.suggested_name)
        if fetched.gguf_info is not None:
            self.reader.remember_gguf_info(fetched.digest, fetched.gguf_info)
        if fetched.manifest is not None:
            progress(PullProgress(status="writing manifest"))
            with self.store.write_lock():
                replaced = current_digests(self.store, ref)
                self.store.write_manifest(ref, fetched.manifest)
            collect_replaced(self.store, replaced, fetched.manifest)
            progress(PullProgress(status="success"))
            return ref.display
        blob = StoredBlob(fetched.digest, fetched.size)
        if fetched.changes is None and fetched.projector is None:
            return self._creator.create(ref.display, None, blob, LayerChanges(), progress)
        projector = None
        if fetched.projector is not None:
            projector = ProjectorSource(fetched.projector.digest, fetched.projector)
        changes = fetched.changes or LayerChanges()
        try:
            return self._creator.create(
                ref.display, None, blob, changes, progress, projector=projector
            )
        except InvalidRequest as exc:  # what the source sent cannot be a model: its fault
            raise PullFailed(f"cannot store '{ref.display}': {exc.message}") from exc

    @_store_refusals
    def push(
        self, name: str, *, progress: ProgressCallback = _ignore, insecure: bool = False
    ) -> str:
        """Upload model ``name`` to the registry its name points at (``host/namespace/
        model:tag``; a short name means registry.ollama.ai), sending only the blobs the
        registry lacks. Progress follows Ollama: ``retrieving manifest``, ``pushing
        <id>`` with ``total`` and ``completed``, ``pushing manifest``, ``success``.
        Raises :class:`PushFailed` when the registry refuses or cannot be reached."""
        from power_core.pull.push import RegistryPusher

        if not isinstance(name, str) or not name.strip():
            raise InvalidRequest("nothing to push: the model name is empty", param="model")
        # looked up before the first report: a bad or unknown name is then the route's own
        # 400 or 404, not an error line after a streamed 200
        stored = self.reader.stored(name)
        progress(PullProgress(status="retrieving manifest"))
        RegistryPusher().push(
            name.strip(), stored.manifest, self.store.blob_path, progress, insecure=insecure
        )
        progress(PullProgress(status="success"))
        return stored.ref.display

    # ------------------------------------------------------------------ blobs
    def has_blob(self, digest: str) -> bool:
        """Whether a blob is in the store (for ``HEAD /api/blobs/<digest>``)."""
        return self.store.has_blob(digest)

    @_store_refusals
    def put_blob_stream(
        self, chunks: Iterable[bytes], expected_digest: str, expected_size: int | None = None
    ) -> StoredBlob:
        """Store an uploaded blob, verified against its digest (``POST /api/blobs``)."""
        return self.store.put_blob_stream(
            chunks, expected_digest=expected_digest, expected_size=expected_size
        )

"""Where ``pull`` downloads models from (the ``register_model_sources`` hook)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from power_core.gguf import GGUFInfo
    from power_core.store.base import ModelStore, StoredBlob
    from power_core.store.builder import LayerChanges
    from power_core.store.manifest import Manifest


@dataclass
class PullProgress:
    """One progress report; ``status`` follows Ollama's pull statuses."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


@dataclass
class FetchedBlob:
    """A model file that a source stored as a verified blob."""

    digest: str
    size: int
    #: a model name derived from the reference (file name), used when none is given
    suggested_name: str
    #: the GGUF header, when the source parsed it to check the file (saves a second parse)
    gguf_info: GGUFInfo | None = None
    #: a whole model (a registry's manifest, every blob it lists already stored): the
    #: library stores it (same config and layers) instead of building one around ``digest``
    manifest: Manifest | None = None
    #: without a manifest: what the model built around ``digest`` sets (its template,
    #: licenses, parameters), as a create's Modelfile would
    changes: LayerChanges | None = None
    #: without a manifest: a multimodal projector already stored, for the model built
    projector: StoredBlob | None = None


ProgressCallback = Callable[[PullProgress], None]


@runtime_checkable
class ModelSource(Protocol):
    """Downloads a model file into the store.

    Optionally it has ``check(reference: str) -> None``, which raises
    :class:`~power_core.errors.InvalidRequest` for a reference it takes but can never
    fetch (a URL without a host): the pull is then refused with a 400 before it starts.
    """

    #: unique name, e.g. ``"url"``
    name: str

    def handles(self, reference: str) -> bool:
        """Whether this source understands ``reference`` (a URL, a registry name, ...)."""
        ...

    def fetch(
        self,
        reference: str,
        store: ModelStore,
        progress: ProgressCallback,
        *,
        expected_digest: str | None = None,
        insecure: bool = False,
    ) -> FetchedBlob:
        """Download into ``store`` as a verified blob, reporting progress as it goes.

        ``insecure`` (Ollama's pull option) allows plain HTTP and unverified TLS.

        Raises :class:`~power_core.errors.PullFailed` (or ``DigestMismatch``) with a clear
        message; leaves no partial blob visible, only a resumable partial download.
        """
        ...

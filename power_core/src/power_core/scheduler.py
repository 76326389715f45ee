"""Which models are loaded: load on first use, keep-alive expiry, LRU eviction.

Leases protect running work: a model with an open lease (or with jobs in its engine) is
never unloaded or evicted. All methods are called from one thread (the CLI's) or from
greenlets of the server's one hub thread; blocking work (loading, closing an engine) runs
on native threads so greenlets keep being served.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, cast

from power_core.adapters import check_stored_adapters
from power_core.concurrency import run_on_native_thread
from power_core.config import Settings
from power_core.engine import Backend, Engine, LoadSpec
from power_core.errors import (
    BackendUnavailable,
    InvalidRequest,
    ModelLoadFailed,
    ModelNotFound,
    PowerError,
    UnsupportedFeature,
)
from power_core.models import ResolvedModel
from power_core.types import LoadOptions

log = logging.getLogger(__name__)

#: request options that shape a loaded model, with their types
LOAD_OPTION_TYPES: dict[str, type] = {
    "num_ctx": int,
    "num_batch": int,
    "num_thread": int,
    "use_mmap": bool,
    "use_mlock": bool,
    "num_gpu": int,
    "main_gpu": int,
}
#: the least each integer load option may be (the others must be positive); a negative
#: ``num_gpu`` offloads as many layers as fit, as in Ollama
_LEAST_LOAD_OPTION = {"num_gpu": None, "main_gpu": 0}


@dataclass
class LoadedModel:
    """A model in memory, as ``ps`` shows it."""

    model: ResolvedModel
    engine: Engine
    options: LoadOptions
    load_ns: int
    leases: int = 0
    last_used: float = field(default_factory=time.monotonic)
    #: monotonic deadline; ``None`` keeps it forever
    expires_at: float | None = None
    #: wall-clock version of ``expires_at`` for display
    expires_wall: float | None = None
    #: the keep-alive of the request scheduled last, which the idle timer follows (as in
    #: Ollama): ``keep_alive: 0`` sent last unloads even if an earlier request ends after
    keep_alive: float | None = None
    #: on its way out (an unload or a reload waits for its requests): takes no new ones
    draining: bool = False


def load_options_from(settings: Settings, overrides: dict[str, Any]) -> LoadOptions:
    """Configured load options with a request's overrides applied and type-checked."""
    base = LoadOptions(
        num_ctx=settings.num_ctx,
        num_batch=settings.num_batch,
        num_thread=settings.num_thread,
        adapt_threads=settings.adapt_threads,
        use_mmap=settings.use_mmap,
        num_gpu=settings.num_gpu,
        flash_attention=settings.flash_attention,
        kv_cache_type=settings.kv_cache_type,
        num_parallel=settings.num_parallel,
        max_queue=settings.max_queue,
    )
    changes = {
        key: checked_load_option(key, value)
        for key, value in overrides.items()
        if key in LOAD_OPTION_TYPES
    }
    return replace(base, **changes)


def checked_load_option(key: str, value: Any) -> Any:
    """``value`` as load option ``key`` takes it; :class:`InvalidRequest` if it cannot."""
    expected = LOAD_OPTION_TYPES[key]
    if expected is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if (
        value is None
        or isinstance(value, bool) != (expected is bool)
        or not isinstance(value, expected)
    ):
        raise InvalidRequest(f"option '{key}' must be {expected.__name__}", param=key)
    if isinstance(value, int) and not isinstance(value, bool):
        least = _LEAST_LOAD_OPTION.get(key, 1)
        if least == 1 and value < 1:
            raise InvalidRequest(f"option '{key}' must be positive", param=key)
        if least is not None and value < least:
            raise InvalidRequest(f"option '{key}' must not be negative", param=key)
        if key == "num_gpu":
            value = max(value, -1)  # every negative means "as many as fit": one reload
    return value


def model_load_parameters(model: ResolvedModel) -> dict[str, Any]:
    """The load options among the model's Modelfile parameters (``PARAMETER num_ctx
    8192``), which a request's own options override, as in Ollama. One that would be
    refused as a request's option (``num_thread 0``, Ollama's "automatic"; a pulled
    model's ``"num_ctx": "8192"``) is left out with a warning: a model's own parameter
    must not fail every request to it."""
    chosen: dict[str, Any] = {}
    for key in LOAD_OPTION_TYPES:
        if key not in model.parameters:
            continue
        try:
            chosen[key] = checked_load_option(key, model.parameters[key])
        except InvalidRequest as exc:
            _warn_unused(model, key, exc.message)
    return chosen


#: (model, parameter) pairs already warned about by :func:`_warn_unused`
_WARNED_PARAMETERS: set[tuple[str, str]] = set()


def _warn_unused(model: ResolvedModel, key: str, reason: str) -> None:
    """Say once per model and parameter that a load parameter of the model is not used."""
    if (model.name, key) not in _WARNED_PARAMETERS:
        _WARNED_PARAMETERS.add((model.name, key))
        log.warning("%s: its parameter %s is not used: %s", model.name, key, reason)


def planned_context(model: ResolvedModel, settings: Settings) -> int:
    """The context ``model`` loads with when a request asks for none: its Modelfile's
    ``num_ctx``, else the configured one, no longer than it was trained for."""
    options = load_options_from(settings, model_load_parameters(model))
    trained = trained_context(model)
    return min(options.num_ctx, trained) if trained else options.num_ctx


def trained_context(model: ResolvedModel) -> int | None:
    """The context the model was trained for (its GGUF's ``<arch>.context_length``)."""
    architecture = model.metadata.get("general.architecture")
    trained = model.metadata.get(f"{architecture}.context_length")
    return trained if isinstance(trained, int) and trained > 0 else None


def within_trained_context(model: ResolvedModel, options: LoadOptions) -> LoadOptions:
    """``options`` with a context window no longer than the model was trained for (its
    GGUF's ``<architecture>.context_length``), as Ollama loads it: tokens past it are out
    of what the model learnt, and the cells would take memory for nothing."""
    trained = trained_context(model)
    if trained is not None and trained < options.num_ctx:
        if (model.name, options.num_ctx) not in _WARNED_CONTEXTS:  # once, not per request
            if len(_WARNED_CONTEXTS) >= 1024:  # a client trying every size: warn again
                _WARNED_CONTEXTS.clear()
            _WARNED_CONTEXTS.add((model.name, options.num_ctx))
            log.warning(
                "%s: num_ctx %d is more than the %d tokens it was trained for; using %d",
                model.name,
                options.num_ctx,
                trained,
                trained,
            )
        return replace(options, num_ctx=trained)
    return options


#: (model, num_ctx) pairs already warned about by :func:`within_trained_context`
_WARNED_CONTEXTS: set[tuple[str, int]] = set()


class ModelScheduler:
    """Owns every loaded engine."""

    def __init__(
        self,
        settings: Settings,
        backends: Callable[[], dict[str, Backend]],
        clock: Callable[[], float] = time.monotonic,
        is_stored: Callable[[str], bool] = lambda _name: True,
    ) -> None:
        self._settings = settings
        self._backends = backends
        self._clock = clock
        #: whether a model of that name is still in the store: one deleted while a request
        #: for it waited to load it is not loaded
        self._is_stored = is_stored
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()  # a gevent lock under the server: it serialises loads

    # ---------------------------------------------------------------------------- leases
    @contextmanager
    def lease(
        self,
        model: ResolvedModel,
        load_overrides: dict[str, Any] | None = None,
        keep_alive: float | None = None,
    ) -> Iterator[LoadedModel]:
        """Hold ``model`` loaded (loading it if needed) for the duration of the block."""
        entry = self.acquire(model, load_overrides or {}, keep_alive)
        try:
            yield entry
        finally:
            self.release(entry)

    def acquire(
        self,
        model: ResolvedModel,
        load_overrides: dict[str, Any],
        keep_alive: float | None = None,
    ) -> LoadedModel:
        """Load or reuse ``model`` and take a lease on it; pair with :meth:`release`.
        ``keep_alive`` (seconds; ``None``: the configured default) is how long it stays
        loaded once idle, unless a request scheduled after this one says otherwise."""
        asked = {**self._usable_parameters(model), **load_overrides}
        options = within_trained_context(model, load_options_from(self._settings, asked))
        options = self._effective_options(model, options)
        entry = self._loaded.get(model.name)
        if entry is None or not self._serves(entry, model, options):
            if entry is not None:
                # reloaded with other options (or draining): its requests may take long (a
                # client that stopped reading), and loads of other models must not wait
                # behind them, so they end outside the lock that serialises loads
                self._check_options(model, options)
                self._wait_until_idle(entry)
            with self._lock:  # loads and unloads one at a time
                entry = self._load_as_asked_by(model, options, load_overrides)
        entry.leases += 1
        entry.last_used = self._clock()
        entry.expires_at = None
        entry.keep_alive = keep_alive
        return entry

    def _usable_parameters(self, model: ResolvedModel) -> dict[str, Any]:
        """The model's own load parameters, less any its backend refuses (``num_thread
        100000`` from a registry or a hand-edited store), with a warning once: a model's
        own parameter must not fail every request to it."""
        chosen = model_load_parameters(model)
        if not chosen:
            return chosen
        check = getattr(self._backend_for(model), "check_options", None)
        if check is None:
            return chosen
        base = load_options_from(self._settings, {})
        for key in list(chosen):
            try:
                check(replace(base, **{key: chosen[key]}))
            except InvalidRequest as exc:
                del chosen[key]
                _warn_unused(model, key, exc.message)
        return chosen

    def lease_again(self, entry: LoadedModel) -> LoadedModel:
        """One more lease on ``entry``, for a caller that holds one already (a request that
        starts several generations). It waits for nothing: through :meth:`acquire` it
        could wait forever on a model being drained, which its own first lease keeps busy."""
        entry.leases += 1
        entry.last_used = self._clock()
        entry.expires_at = None
        return entry

    @staticmethod
    def _serves(entry: LoadedModel, model: ResolvedModel, options: LoadOptions) -> bool:
        """Whether ``entry`` takes a request for ``model`` with ``options`` as it is: then
        the request waits on nothing, not even on another model's load."""
        return (
            not entry.draining and entry.options == options and entry.model.digest == model.digest
        )

    def _load_as_asked_by(
        self, model: ResolvedModel, options: LoadOptions, load_overrides: dict[str, Any]
    ) -> LoadedModel:
        """:meth:`_load_as_asked`; a load that failed because of a load option the request
        set itself (a backend's :class:`ModelLoadFailed` naming it as ``param``: too many
        layers for the GPU) is the client's to change, a 400. Set by the server's or the
        model's settings, it stays the server's failure."""
        try:
            return self._load_as_asked(model, options)
        except ModelLoadFailed as exc:
            if exc.param is not None and exc.param in load_overrides:
                raise InvalidRequest(exc.message, param=exc.param) from exc
            raise

    def _load_as_asked(self, model: ResolvedModel, options: LoadOptions) -> LoadedModel:
        self.reap_expired()
        entry = self._loaded.get(model.name)
        if entry is not None and self._serves(entry, model, options):
            return entry  # loaded meanwhile, by the request this one waited behind
        # options the backend cannot honour unload nothing: a 400, and the model stays
        # loaded for everyone else
        self._check_options(model, options)
        if entry is not None:
            self._drain(entry)
        if not self._is_stored(model.name):  # deleted while this request waited
            raise ModelNotFound(model.name)
        self._make_room()
        entry = self._load(model, options)
        # as later requests will compare them: the first load is what tells the backend
        # which values change nothing (llama.cpp without GPUs)
        entry.options = self._effective_options(model, options)
        self._loaded[model.name] = entry
        return entry

    def release(self, entry: LoadedModel) -> None:
        """Drop a lease; once idle, the model stays loaded for the keep-alive of the request
        scheduled last."""
        entry.leases -= 1
        entry.last_used = self._clock()
        seconds = self._settings.keep_alive if entry.keep_alive is None else entry.keep_alive
        if seconds < 0:
            entry.expires_at = entry.expires_wall = None
        else:
            entry.expires_at = entry.last_used + seconds
            entry.expires_wall = time.time() + seconds
        if seconds == 0 and entry.leases == 0:
            self.reap_expired()

    # ---------------------------------------------------------------------------- queries
    def loaded(self) -> list[LoadedModel]:
        """Loaded models, most recently used first."""
        self.reap_expired()
        return sorted(self._loaded.values(), key=lambda e: e.last_used, reverse=True)

    def unload(self, name: str) -> bool:
        """Unload a model once its running requests end; requests arriving meanwhile wait,
        then load it again. False if it was not loaded."""
        entry = self._loaded.get(name)
        if entry is None:
            return False
        self._drain(entry)
        return True

    def unload_when_idle(self, name: str) -> None:
        """Unload a model now if it is idle, else once its running requests end, without
        waiting for them (a model that was deleted); it takes no new ones meanwhile."""
        entry = self._loaded.get(name)
        if entry is None:
            return
        entry.draining = True
        entry.keep_alive = 0  # the last request's release unloads it
        if self._idle(entry):
            self._unload(entry)

    def set_keep_alive(self, name: str, keep_alive: float | None) -> None:
        """Restart a loaded model's idle timer (Ollama's "load" request)."""
        entry = self._loaded.get(name)
        if entry is not None and entry.leases == 0:
            entry.leases += 1
            entry.keep_alive = keep_alive
            self.release(entry)

    def reap_expired(self) -> None:
        """Unload idle models whose keep-alive ran out."""
        now = self._clock()
        for entry in list(self._loaded.values()):
            if self._idle(entry) and entry.expires_at is not None and entry.expires_at <= now:
                self._unload(entry)

    def close(self) -> None:
        """Unload everything (server shutdown)."""
        for entry in list(self._loaded.values()):
            self._unload(entry)

    # ---------------------------------------------------------------------------- internals
    @staticmethod
    def _idle(entry: LoadedModel) -> bool:
        return entry.leases == 0 and entry.engine.active_jobs() == 0

    def _drain(self, entry: LoadedModel) -> None:
        """Unload ``entry`` once its requests end; it takes no new ones meanwhile (else a
        steady stream of them would keep it, and whoever waits, forever)."""
        self._wait_until_idle(entry)
        self._unload(entry)

    def _wait_until_idle(self, entry: LoadedModel) -> None:
        """Take no new requests on ``entry`` and wait for its running ones to end."""
        entry.draining = True
        while not self._idle(entry):
            time.sleep(0.05)  # cooperative under gevent's patched time

    def _make_room(self) -> None:
        limit = self._settings.max_loaded_models
        while len(self._loaded) >= limit:
            idle = [e for e in self._loaded.values() if self._idle(e)]
            if idle:
                self._unload(min(idle, key=lambda e: e.last_used))
            else:
                # every loaded model is busy: the one used longest ago takes no new requests
                # and goes once its running ones end (else steady traffic to it, which takes
                # no lock, would keep this request, and every load behind it, waiting)
                self._drain(min(self._loaded.values(), key=lambda e: e.last_used))

    def _backend_for(self, model: ResolvedModel) -> Backend:
        backends = self._backends()
        for backend in backends.values():
            if backend.supports(model.format):
                if model.adapters and not getattr(backend, "applies_adapters", False):
                    raise UnsupportedFeature(
                        f"model '{model.name}' has LoRA adapters, which the {backend.name} "
                        "backend cannot apply"
                    )
                return backend
        if not backends:
            raise BackendUnavailable(
                "no backend available: install one, e.g. `pip install a3s-power-llamacpp`"
            )
        raise BackendUnavailable(f"no installed backend can load {model.format} models")

    def _effective_options(self, model: ResolvedModel, options: LoadOptions) -> LoadOptions:
        """``options`` as the backend would load them (its optional
        ``effective_options``): values that change nothing there are made equal, so that a
        request differing only in them reuses the loaded model."""
        effective = getattr(self._backend_for(model), "effective_options", None)
        return options if effective is None else cast(LoadOptions, effective(options))

    def _check_options(self, model: ResolvedModel, options: LoadOptions) -> None:
        """The backend's own refusal of ``options`` (its optional ``check_options``)."""
        check = getattr(self._backend_for(model), "check_options", None)
        if check is not None:
            check(options)

    def _load(self, model: ResolvedModel, options: LoadOptions) -> LoadedModel:
        backend = self._backend_for(model)
        try:
            check_stored_adapters(model.model_path, model.adapters, backend)
        except InvalidRequest as exc:  # the stored model's fault, not the request's
            raise ModelLoadFailed(f"cannot load '{model.name}': {exc.message}") from None
        spec = LoadSpec(
            name=model.name,
            path=model.model_path,
            digest=model.model_digest,
            format=model.format,
            options=options,
            metadata=model.metadata,
            adapters=tuple(model.adapters),
            projector=model.projector,
        )
        started = time.perf_counter_ns()
        try:
            engine = run_on_native_thread(lambda: backend.load(spec), "a3s-power-load")
        except Exception as exc:
            if not model.model_path.is_file():
                # deleted since the request found it (a delete racing a load): a 404, as
                # the request would have met a moment later, not the backend's failure
                raise ModelNotFound(model.name) from exc
            if isinstance(exc, PowerError):
                raise
            # a backend's own failure becomes a clear typed error
            raise ModelLoadFailed(f"failed to load model '{model.name}': {exc}") from exc
        log.info(
            "loaded %s with %s in %.2fs",
            model.name,
            backend.name,
            (time.perf_counter_ns() - started) / 1e9,
        )
        return LoadedModel(model, engine, options, time.perf_counter_ns() - started)

    def _unload(self, entry: LoadedModel) -> None:
        if self._loaded.get(entry.model.name) is not entry:
            return  # another greenlet got here first
        del self._loaded[entry.model.name]
        run_on_native_thread(entry.engine.close, "a3s-power-unload")
        log.info("unloaded %s", entry.model.name)

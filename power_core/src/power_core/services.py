"""The core's services, one object an API surface or a CLI command works through."""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from power_core.chat.images import prompt_token_count
from power_core.config import Settings, load_settings
from power_core.engine import Engine
from power_core.errors import InvalidRequest, ModelNotFound, ServerBusy, UnsupportedFeature
from power_core.generation import GenerationStream
from power_core.job_building import build_job
from power_core.models import ResolvedModel
from power_core.names import ModelRef
from power_core.plugins import PluginRegistry, get_registry
from power_core.scheduler import LoadedModel, ModelScheduler
from power_core.stores import open_library
from power_core.types import EmbeddingRequest, EmbeddingResult, GenerationRequest


class PowerServices:
    """Models on disk (:attr:`library`), models in memory (:attr:`scheduler`), generation."""

    def __init__(self, settings: Settings, registry: PluginRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.library = open_library(settings, registry)
        self.scheduler = ModelScheduler(settings, registry.backends, is_stored=self.library.exists)
        #: set when the server stops: new generations, loads, embeddings and transfers
        #: get a 503 (:meth:`refuse_if_shutting_down`)
        self.shutting_down = False

    @classmethod
    def create(cls, settings: Settings | None = None) -> PowerServices:
        """Services with settings from the environment and the process-wide plugins."""
        return cls(settings or load_settings(), get_registry())

    # ---------------------------------------------------------------------- generation
    def generate(
        self, request: GenerationRequest, model: ResolvedModel | None = None
    ) -> GenerationStream:
        """Start generating; model errors, load errors and a full queue raise here, before
        the first event, so surfaces can still answer with a proper status code.

        ``model`` is ``request.model`` already resolved by the caller, if it was.
        """
        started = time.perf_counter_ns()
        self.refuse_if_shutting_down()
        if model is None:
            model = self.library.resolve(request.model)
        self.check_capabilities(request, model)
        entry = self.scheduler.acquire(model, request.load, request.keep_alive)
        load_ns = time.perf_counter_ns() - started
        return GenerationStream(self.scheduler, entry, request, started, load_ns)

    def check_capabilities(self, request: GenerationRequest, model: ResolvedModel) -> None:
        """:class:`InvalidRequest` when ``request`` asks ``model`` for what it cannot do:
        generate at all (an embedding model), separate thinking, choose among tools its
        template never shows it (a format or a forced tool choice can still make it call
        one, through a grammar), read images, fill in the middle.
        :meth:`generate` checks; a caller that starts later (the CLI's chat, which loads
        first) can ask before."""
        if model.embeds_only:  # Ollama's words, for a chat or a generation (or their loads)
            asked = "chat" if request.messages is not None else "generate"
            raise InvalidRequest(f'"{request.model}" does not support {asked}', param="model")
        if request.think and not model.can_think(request.template):
            raise InvalidRequest(f'"{request.model}" does not support thinking', param="think")
        may_choose = request.tool_choice == "auto" and request.response_format is None
        if request.tools and may_choose and "tools" not in model.capabilities:
            raise InvalidRequest(f'"{request.model}" does not support tools', param="tools")
        has_images = bool(request.images) or any(m.images for m in request.messages or [])
        if has_images and "vision" not in model.capabilities:
            raise InvalidRequest(f"model '{model.name}' does not support images", param="images")
        # a request's own template may write the fill-in-the-middle prompt (a Go one naming
        # .Suffix): the job's building decides then
        if request.suffix and not request.template and "insert" not in model.capabilities:
            raise UnsupportedFeature(
                f"model '{model.name}' does not support insert (suffix)", param="suffix"
            )

    def generate_beside(
        self, stream: GenerationStream, request: GenerationRequest
    ) -> GenerationStream:
        """Another generation on the model ``stream`` runs on, for a request that asks for
        several at once (OpenAI's completions with a list of prompts). Its lease is taken
        without waiting on the scheduler, which the first lease could keep waiting for ever
        on a model being drained (an unload, or room for another model)."""
        started = time.perf_counter_ns()
        self.refuse_if_shutting_down()
        entry = self.scheduler.lease_again(stream.entry)
        return GenerationStream(self.scheduler, entry, request, started, 0)

    def load_model(
        self, name: str, keep_alive: float | None = None, load: dict | None = None
    ) -> tuple[ResolvedModel, int]:
        """Load a model without generating (an empty prompt); returns it and the load time."""
        started = time.perf_counter_ns()
        self.refuse_if_shutting_down()
        model = self.library.resolve(name)
        entry = self.scheduler.acquire(model, load or {}, keep_alive)
        self.scheduler.release(entry)
        return model, time.perf_counter_ns() - started

    def unload_model(self, name: str) -> None:
        """Unload a model now (Ollama's ``keep_alive: 0`` with an empty prompt, ``stop``),
        once its running requests end. A model deleted while it was loaded (by another
        process: ``a3s-power rm``) is unloaded by its name; ModelNotFound when such a name
        is neither stored nor loaded."""
        try:
            loaded_as = self.library.resolve(name).name
        except ModelNotFound:
            if not self.scheduler.unload(ModelRef.parse(name).display):
                raise
            return
        self.scheduler.unload(loaded_as)

    def delete_model(self, name: str) -> list[str]:
        """Delete a stored model and unload it if it is loaded, once its running requests
        end (the delete does not wait for them, as Ollama's does not): its memory is not
        held for a model that is gone. Returns the removed blobs' digests."""
        removed = self.library.delete(name)
        self.scheduler.unload_when_idle(ModelRef.parse(name).display)
        return removed

    def loaded_models(self) -> list[LoadedModel]:
        """Models in memory, most recently used first."""
        return self.scheduler.loaded()

    # ---------------------------------------------------------------------- embeddings
    def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Embed every input; ``dimensions`` truncates and re-normalises."""
        started = time.perf_counter_ns()
        self.refuse_if_shutting_down()
        if not request.inputs:
            raise InvalidRequest("input must not be empty", param="input")
        model = self.library.resolve(request.model)
        with self.scheduler.lease(model, request.load, request.keep_alive) as entry:
            load_ns = time.perf_counter_ns() - started
            size = entry.engine.info.embedding_length
            asked = request.dimensions
            if asked is not None and (asked < 1 or (asked > size and not request.whole_when_wider)):
                raise InvalidRequest(
                    f"dimensions must be between 1 and {size} for model '{model.name}'",
                    param="dimensions",
                )
            result = _embed(entry.engine, request)
        vectors = result.vectors
        if request.dimensions is not None and request.dimensions < size:
            vectors = [_unit(v[: request.dimensions]) for v in vectors]
        elif not request.normalize and result.norms is not None:
            vectors = [[x * norm for x in v] for v, norm in zip(vectors, result.norms, strict=True)]
        return replace(
            result,
            vectors=vectors,
            load_ns=load_ns,
            total_ns=time.perf_counter_ns() - started,
        )

    def tokenize(self, name: str, text: str) -> list[int]:
        """Token ids of ``text`` under a model (loads it)."""
        self.refuse_if_shutting_down()
        model = self.library.resolve(name)
        with self.scheduler.lease(model) as entry:
            return entry.engine.tokenize(text)

    def prompt_token_count(self, request: GenerationRequest) -> int:
        """The tokens the prompt of ``request`` takes, rendered as a generation would render
        it (chat template, tools, a history fitted to the context); loads the model."""
        self.refuse_if_shutting_down()
        model = self.library.resolve(request.model)
        self.check_capabilities(request, model)
        with self.scheduler.lease(model, request.load) as entry:
            job = build_job(model, entry.engine, request)
            if isinstance(job.prompt, list):
                return len(job.prompt)
            # an engine that can lay out the images says exactly (an optional method)
            exact = getattr(entry.engine, "prompt_length_with_images", None)
            if job.images and exact is not None:
                return int(exact(job.prompt, job.images, add_bos=job.add_bos))
            return prompt_token_count(entry.engine, job.prompt, job.images, add_bos=job.add_bos)

    def refuse_if_shutting_down(self) -> None:
        """:class:`ServerBusy` (503) once the server stops: work that would start now (a
        load, a generation, a pull) would be cut short or outlive the grace period."""
        if self.shutting_down:
            raise ServerBusy("the server is shutting down")

    def close(self) -> None:
        """Unload every model, and remove the files of quantizings cut short."""
        self.scheduler.close()
        self.library.close()


def _embed(engine: Engine, request: EmbeddingRequest) -> EmbeddingResult:
    """``engine.embed`` of the request's inputs, told when the client left if it can be
    (a ``cancelled`` keyword is optional for backends)."""
    embed: Callable[..., EmbeddingResult] = engine.embed
    if request.cancelled is not None and _takes_keyword(embed, "cancelled"):
        return embed(request.inputs, truncate=request.truncate, cancelled=request.cancelled)
    return embed(request.inputs, truncate=request.truncate)


def _takes_keyword(method: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm > 0 else vector

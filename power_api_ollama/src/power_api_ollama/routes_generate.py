"""``POST /api/generate`` and ``POST /api/chat``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import suppress

from flask import Blueprint, Response, request

from power_api_ollama.errors import error_line, log_stream_failure
from power_api_ollama.render import OllamaRenderer
from power_api_ollama.translate import chat_request, generate_request
from power_api_ollama.wire import json_line, json_response, ndjson_response, wants_stream
from power_core.errors import PowerError
from power_core.generation import GenerationStream
from power_core.models import ResolvedModel
from power_core.server.direct import DirectWriter, direct_writer, write_text_directly
from power_core.server.disconnect import (
    cancel_if_client_leaves_while_queued,
    cancel_when_client_leaves,
    is_client_gone_error,
)
from power_core.server.json_body import parse_json_object
from power_core.services import PowerServices
from power_core.types import ChatMessage, GenerationEvent, GenerationRequest

log = logging.getLogger(__name__)


def _stop_early(stream: GenerationStream, events: Iterator[GenerationEvent]) -> None:
    """Cancel a generation that was not read to its end, and let it wind down."""
    stream.cancel()
    # The engine still sends the cancelled job's closing events (within one step); reading
    # them lets the stream end from the engine's side, as a finished one would.
    with suppress(PowerError):
        for _ in events:
            pass


def ndjson_generation(
    stream: GenerationStream, renderer: OllamaRenderer, writer: DirectWriter | None = None
) -> Iterator[bytes]:
    """The NDJSON lines of a streamed generation.

    With a ``writer``, the headers go out at once and plain text goes from the engine's
    thread straight to the client (:mod:`power_core.server.direct`). When the client goes
    away, gevent's server fails a write and closes this generator; the ``finally`` then
    cancels the generation so its engine slot is freed at once.
    """
    events = iter(stream)
    try:
        if writer is not None:
            write_text_directly(stream, writer, lambda text: json_line(renderer.text_chunk(text)))
        for payload in renderer.stream(events):
            yield json_line(payload)
    except Exception as exc:  # the status line is already out: report in-band, logged
        if is_client_gone_error(exc):  # nobody to report to
            log.info("the client left a streamed generation (%s)", type(exc).__name__)
            return
        log_stream_failure(exc)
        yield error_line(exc)
    finally:
        if not renderer.finished:
            _stop_early(stream, events)


def respond(stream: GenerationStream, renderer: OllamaRenderer, streaming: bool) -> Response:
    """Stream NDJSON, or collect everything into one JSON object for ``stream: false``."""
    if streaming:
        cancel_if_client_leaves_while_queued(stream)
        return ndjson_response(ndjson_generation(stream, renderer, direct_writer()))
    cancel_when_client_leaves(stream)
    events = iter(stream)
    try:
        payload = renderer.collect(events)
    finally:
        if not renderer.finished:
            _stop_early(stream, events)
    return json_response(payload)


def _load_or_unload(
    services: PowerServices, gen: GenerationRequest, renderer: OllamaRenderer
) -> Response:
    # Ollama: an empty prompt (or message list) loads the model; with keep_alive 0 it
    # unloads it instead. A load asking for what the model cannot do (think, tools) is
    # refused, as Ollama refuses it, rather than loaded for requests that would fail.
    if gen.keep_alive == 0:
        services.unload_model(gen.model)
        return json_response(renderer.loaded("unload"))
    services.check_capabilities(gen, services.library.resolve(gen.model))
    services.load_model(gen.model, gen.keep_alive, gen.load)
    return json_response(renderer.loaded("load"))


def _apply_model_defaults(
    services: PowerServices, gen: GenerationRequest, images: list[bytes]
) -> ResolvedModel:
    """Ollama's defaults and refusals that depend on the model, which is returned."""
    model = services.library.resolve(gen.model)
    if gen.think is None and model.can_think(gen.template):
        gen.think = True  # Ollama separates reasoning by default on thinking models
    # thinking, tools or images the model cannot take are refused by services.generate
    if images and gen.raw:
        gen.images = images  # shown where the raw prompt has their tags, else before it
    elif images:
        # Images travel on messages, so the prompt becomes a single user turn.
        gen.messages = [ChatMessage(role="user", content=gen.prompt or "", images=images)]
        gen.prompt = None
    return model


def add_generate_routes(blueprint: Blueprint, services: PowerServices) -> None:
    """Register ``/api/generate`` and ``/api/chat`` on ``blueprint``."""

    @blueprint.post("/api/generate")
    def generate() -> Response:
        body = parse_json_object(request.get_data())
        gen, images = generate_request(body)
        streaming = wants_stream(body)
        renderer = OllamaRenderer(gen.model, chat=False)
        if not gen.prompt:
            return _load_or_unload(services, gen, renderer)
        model = _apply_model_defaults(services, gen, images)
        return respond(services.generate(gen, model), renderer, streaming)

    @blueprint.post("/api/chat")
    def chat() -> Response:
        body = parse_json_object(request.get_data())
        gen = chat_request(body)
        streaming = wants_stream(body)
        renderer = OllamaRenderer(gen.model, chat=True)
        if not gen.messages:
            return _load_or_unload(services, gen, renderer)
        model = _apply_model_defaults(services, gen, [])
        return respond(services.generate(gen, model), renderer, streaming)

"""The WebSocket mode of ``/v1/responses``: ``client.responses.connect()`` in the openai SDK.

A client opens ``ws://host:port/v1/responses`` and sends ``response.create`` messages, each
the body of ``POST /v1/responses`` beside ``"type"`` (``stream`` is implied). They are
answered one after another, in the order sent (lanes named by ``stream_id`` included),
each with the events its SSE stream would carry, one JSON text message per event, and the
connection stays open for the next.

The connection keeps its recent responses (a :class:`ResponseStore` of its own: the
conversation each read and what it answered, :data:`KEPT_PER_CONNECTION` of them), so a
``response.create`` whose ``previous_response_id`` names one, or one the server's
:class:`ResponseStore` keeps, sends only the new items, as
OpenAI's WebSocket mode continues a response with ``store`` false; any other id is
``previous_response_not_found``, and a continuation that fails makes the connection forget
the response it named. ``generate: false`` (or ``prompt_cache_options.
prewarm``) prepares a turn without answering it: the model reads the prompt into its cache
and the response, with no output, can be continued. Errors are ``error`` events in the
socket's shape (a ``status`` beside the whole ``error`` object) and leave the connection
open; a ``stream_id`` is echoed on every event of its response.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from power_api_openai.conversation_store import ConversationStore
from power_api_openai.errors import power_error_body, power_error_status
from power_api_openai.reasoning_effort import apply_reasoning_effort
from power_api_openai.response_store import ByteBudget, ResponseStore
from power_api_openai.responses import ResponseBuilder, echoed_sampling, guarded_events
from power_api_openai.responses_continued import (
    ContinuedBody,
    KeptInTurn,
    continued_body,
    keep_response,
)
from power_api_openai.responses_request import parse_responses_request
from power_api_openai.sampling import with_openai_defaults
from power_core.errors import InvalidRequest, PowerError
from power_core.models import ResolvedModel
from power_core.server.disconnect import cancel_streams_when, is_client_gone_error
from power_core.server.views import compact_json
from power_core.server.websocket import WholeWrites
from power_core.services import PowerServices
from power_core.types import GenerationDone, GenerationRequest

log = logging.getLogger("power_api_openai")

#: how often a connection with nothing to do looks whether the server is shutting down
IDLE_CHECK_SECONDS = 1.0
#: the close code of a server going away (RFC 6455), for a shutdown
GOING_AWAY = 1001
#: responses a connection keeps: its latest in each of a few lanes (``stream_id``), which
#: may fork from one another
KEPT_PER_CONNECTION = 16
#: a lane's name, as the openai SDK checks it
STREAM_ID = re.compile(r"[A-Za-z0-9_.-]{1,256}")


class MessageTooLarge(InvalidRequest):
    """A message longer than ``max_body_bytes`` in UTF-8 (the socket counts characters)."""

    http_status = 413
    code = "message_too_large"


def serve_responses_socket(
    services: PowerServices,
    socket: Any,
    store: ResponseStore,
    conversations: ConversationStore,
    connections_budget: ByteBudget,
) -> None:
    """Answer the ``response.create`` messages of one connection (a ``simple_websocket``
    server socket) until the client closes it or the server shuts down; responses it may
    continue are its own recent ones (in memory, within ``connections_budget`` for every
    connection together) and those in ``store``, where it stores its own unless told
    ``store: false``, and any of ``conversations``."""
    socket.sock = WholeWrites(socket.sock, services.settings.send_timeout)
    kept = ResponseStore(
        services.settings.max_body_bytes,
        max_count=KEPT_PER_CONNECTION,
        budget=connections_budget,
    )
    try:
        _serve(services, socket, kept, (store, conversations))
    finally:
        kept.clear()


def _serve(
    services: PowerServices,
    socket: Any,
    kept: ResponseStore,
    server_kept: tuple[ResponseStore, ConversationStore],
) -> None:
    try:
        while not services.shutting_down:
            message = socket.receive(timeout=IDLE_CHECK_SECONDS)
            if message is not None:
                _answer(services, socket, message, kept, server_kept)
    except OSError as exc:
        if not is_client_gone_error(exc):
            raise
        log.info("a WebSocket client left (%s)", type(exc).__name__)
        return
    socket.close(reason=GOING_AWAY, message="the server is shutting down")


def _answer(
    services: PowerServices,
    socket: Any,
    message: str | bytes,
    kept: ResponseStore,
    server_kept: tuple[ResponseStore, ConversationStore],
) -> None:
    """Answer one client message; keep the response it makes (before its last event goes,
    so a client that reads it finds the response kept), forget one it failed to continue."""
    stream_id: str | None = None
    continued: ContinuedBody | None = None
    try:
        _check_size(message, services.settings.max_body_bytes)
        event = _client_event(message)
        stream_id = _stream_id(event)
        body = {key: value for key, value in event.items() if key != "stream"}
        store, conversations = server_kept
        continued = continued_body(body, KeptInTurn((kept, store)), conversations)
        answered = _respond(
            services, socket, continued, stream_id, _keeper(continued, kept, server_kept)
        )
    except PowerError as exc:
        status = power_error_status(exc)
        _send(socket, {"type": "error", "status": status, **power_error_body(exc)}, stream_id)
        answered = False
    if not answered and continued is not None and continued.continues is not None:
        kept.delete(continued.continues)


def _keeper(
    continued: ContinuedBody,
    kept: ResponseStore,
    server_kept: tuple[ResponseStore, ConversationStore],
) -> Callable[[dict[str, Any], list[Any], bool], None]:
    """What keeps a finished response: the server's store and conversation (a response
    that generated nothing adds nothing to one), and the connection's own few."""

    def keep(response: dict[str, Any], output: list[Any], generated: bool) -> None:
        keep_response(continued, response, output, *server_kept, into_conversation=generated)
        # no more than one request could carry (the put logs a refusal): past it the client
        # sends the conversation itself, as over HTTP, and meets the same limit
        kept.put(response, *continued.stored_with(output))

    return keep


def _check_size(message: str | bytes, limit: int) -> None:
    size = len(message.encode()) if isinstance(message, str) else len(message)
    if size > limit:
        raise MessageTooLarge(
            f"the message is {size} bytes; this server takes at most {limit} (max_body_bytes)"
        )


def _client_event(message: str | bytes) -> dict[str, Any]:
    """A client message as a ``response.create`` event without its ``type``."""
    try:
        event = json.loads(message)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(f"a message must be a JSON object: {exc}") from None
    if not isinstance(event, dict):
        raise InvalidRequest("a message must be a JSON object")
    kind = event.pop("type", None)
    if kind != "response.create":
        raise InvalidRequest(
            f"unknown event type {kind!r}: this server takes 'response.create'", param="type"
        )
    return event


def _stream_id(event: dict[str, Any]) -> str | None:
    stream_id = event.pop("stream_id", None)
    if stream_id is not None and not (
        isinstance(stream_id, str) and STREAM_ID.fullmatch(stream_id)
    ):
        raise InvalidRequest(
            "'stream_id' must be 1 to 256 letters, digits, '_', '.' or '-'", param="stream_id"
        )
    return stream_id


def _respond(
    services: PowerServices,
    socket: Any,
    continued: ContinuedBody,
    stream_id: str | None,
    keep: Callable[[dict[str, Any], list[Any], bool], None],
) -> bool:
    """Stream the response to a request; whether it completed (or was cut short by
    ``max_output_tokens``), when ``keep`` was given it before its last event."""
    services.refuse_if_shutting_down()
    generate = _generates(continued.body)
    request, options = parse_responses_request(continued.body)
    options.previous_response_id = continued.continues
    options.conversation_id = continued.conversation_id
    if options.background:
        raise InvalidRequest(
            "background responses are made over HTTP; this connection streams its own.",
            param="background",
        )
    model = services.library.resolve(request.model)
    request.sampling = with_openai_defaults(request.sampling, model)
    apply_reasoning_effort(model, request, options.reasoning.get("effort"), "reasoning.effort")
    builder = ResponseBuilder(model.name, options, echoed_sampling(request.sampling, model))
    if not generate:
        _prepare(services, socket, request, model, builder)
        prepared = [*builder.start(), *builder.finish(no_output=True)]
        keep(builder.response(), [], False)
        for event in prepared:
            _send(socket, event, stream_id)
        return True
    stream = services.generate(request, model)
    cancel_streams_when(lambda: not socket.connected, stream)
    finished = lambda: keep(builder.response(), builder.output, True)  # noqa: E731
    with contextlib.closing(guarded_events(stream, builder, finished, socket_shape=True)) as events:
        for event in events:
            _send(socket, event, stream_id)
    return builder.status != "failed"


def _generates(body: dict[str, Any]) -> bool:
    """Whether the response answers (``generate``, unless ``prompt_cache_options.prewarm``
    overrides it), taking both out of ``body``."""
    generate = body.pop("generate", True)
    if not isinstance(generate, bool):
        raise InvalidRequest("'generate' must be a boolean", param="generate")
    cache_options = body.pop("prompt_cache_options", None)
    if cache_options is None:
        return generate
    if not isinstance(cache_options, dict):
        raise InvalidRequest(
            "'prompt_cache_options' must be an object", param="prompt_cache_options"
        )
    prewarm = cache_options.get("prewarm", False)
    if not isinstance(prewarm, bool):
        raise InvalidRequest(
            "'prompt_cache_options.prewarm' must be a boolean",
            param="prompt_cache_options.prewarm",
        )
    return generate and not prewarm


def _prepare(
    services: PowerServices,
    socket: Any,
    request: GenerationRequest,
    model: ResolvedModel,
    builder: ResponseBuilder,
) -> None:
    """Read the prompt into the model's cache without generating (no output token)."""
    request.max_tokens = 0
    stream = services.generate(request, model)
    cancel_streams_when(lambda: not socket.connected, stream)
    try:
        for event in stream:
            if isinstance(event, GenerationDone):
                builder.usage = event.usage
    finally:
        stream.cancel()


def _send(socket: Any, event: dict[str, Any], stream_id: str | None) -> None:
    if stream_id is not None:
        event = {**event, "stream_id": stream_id}
    socket.send(compact_json(event))

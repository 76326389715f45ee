"""``POST /v1/messages``: one generation as an Anthropic message, or as its event stream.

A message's content is its blocks in the order the model wrote them: ``thinking`` (a
thinking model's reasoning, when the request enabled it), ``text``, then a ``tool_use``
block per call. ``stop_reason`` is ``end_turn``, ``max_tokens``, ``stop_sequence`` (one of
the request's ``stop_sequences`` matched; it is named in ``stop_sequence``) or
``tool_use``, or ``model_context_window_exceeded`` when the context filled before
``max_tokens`` was reached. ``usage`` counts the prompt tokens read from the prompt cache as
``cache_read_input_tokens`` and the rest as ``input_tokens``, as Anthropic does.

A stream is the events Anthropic sends: ``message_start``, then per block
``content_block_start``, its deltas (``text_delta``, ``thinking_delta``,
``input_json_delta``) and ``content_block_stop``, then ``message_delta`` (the stop reason
and usage) and ``message_stop``. ``ping`` events keep the connection busy while a long
prompt is read; an error after the stream began is an ``error`` event.
"""

from __future__ import annotations

import logging
import secrets
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from flask import Response

from power_api_anthropic.errors import json_response, stream_error_body
from power_api_anthropic.messages_request import MessagesOptions, parse_messages_request
from power_core.errors import PowerError
from power_core.models import ResolvedModel
from power_core.server.disconnect import (
    cancel_if_client_leaves_while_queued,
    cancel_when_client_leaves,
)
from power_core.server.streams import guarded_stream
from power_core.server.views import compact_json
from power_core.services import PowerServices
from power_core.types import (
    ChoiceDone,
    GenerationDone,
    GenerationEvent,
    GenerationRequest,
    PromptProgress,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
)

log = logging.getLogger("power_api_anthropic")

_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """``msg_`` or ``toolu_`` and 24 random letters and digits, as Anthropic's ids look."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def create_message(services: PowerServices, body: dict[str, Any]) -> Response:
    """Validate, start generating (errors so far are plain 4xx/5xx), then answer or stream."""
    request, options = parse_messages_request(body)
    model = _resolved(services, request)
    stream = services.generate(request, model)
    message = _Message(new_id("msg_"), request.model, options)
    if options.stream:
        cancel_if_client_leaves_while_queued(stream)
        return _event_response(message.events(stream), stream.cancel)
    cancel_when_client_leaves(stream)
    try:
        return json_response(message.whole(stream))
    finally:
        stream.cancel()  # a no-op after a complete generation; frees the slot after an error


def count_tokens(services: PowerServices, body: dict[str, Any]) -> Response:
    """``POST /v1/messages/count_tokens``: the tokens the request's prompt would take."""
    request, _ = parse_messages_request(body, count_only=True)
    _resolved(services, request)
    return json_response({"input_tokens": services.prompt_token_count(request)})


def _resolved(services: PowerServices, request: GenerationRequest) -> ResolvedModel:
    """The request's model; thinking asked of one that does not think is left to the
    model, as Ollama does for Claude Code, which asks every model to think."""
    model = services.library.resolve(request.model)
    if request.think and not model.can_think(request.template):
        log.warning("%s does not think: the request's thinking is left to the model", model.name)
        request.think = None
    return model


def tool_use_block(call: ToolCall) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": call.id if call.id.startswith("toolu_") else new_id("toolu_"),
        "name": call.name,
        "input": call.arguments,
    }


def usage_json(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
    }


@dataclass
class _Message:
    """One answer being put together, whole or as events."""

    id: str
    model: str
    options: MessagesOptions
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)

    def envelope(self, content: list[dict[str, Any]], *, done: bool) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self.stop_reason if done else None,
            "stop_sequence": self.stop_sequence if done else None,
            "usage": usage_json(self.usage),
        }

    def finished(self, event: ChoiceDone) -> None:
        if event.reason == "length":
            limit = self.options.max_tokens
            cut_short = limit is not None and event.completion_tokens < limit
            # the context filled before max_tokens did: Anthropic's name for that
            self.stop_reason = "model_context_window_exceeded" if cut_short else "max_tokens"
        elif event.reason == "tool_calls":
            self.stop_reason = "tool_use"
        elif event.stop_sequence is not None and event.stop_sequence in self.options.stop_sequences:
            self.stop_reason, self.stop_sequence = "stop_sequence", event.stop_sequence

    def whole(self, stream: Iterable[GenerationEvent]) -> dict[str, Any]:
        """Consume the generation into one ``message`` object, its blocks in the order a
        stream of it would give them."""
        content: list[dict[str, Any]] = []

        def add(kind: str, text: str) -> None:
            if content and content[-1]["type"] == kind:
                content[-1][kind] += text
            elif kind == "thinking":
                content.append({"type": "thinking", "thinking": text, "signature": ""})
            else:
                content.append({"type": "text", "text": text})

        for event in stream:
            if isinstance(event, TextDelta) and event.text:
                add("text", event.text)
            elif isinstance(event, ThinkingDelta) and event.text:
                add("thinking", event.text)
            elif isinstance(event, ToolCallEvent):
                content.append(tool_use_block(event.call))
            elif isinstance(event, ChoiceDone):
                self.finished(event)
            elif isinstance(event, GenerationDone):
                self.usage = event.usage
        if not content:  # an empty answer is still one (empty) text block
            content.append({"type": "text", "text": ""})
        return self.envelope(content, done=True)

    def events(self, stream: Iterable[GenerationEvent]) -> Iterator[str]:
        """The stream's events, in Anthropic's order."""
        blocks = _Blocks()
        started = False
        for event in stream:
            if not started:
                started = True
                if isinstance(event, PromptProgress):  # what message_start can count
                    self.usage = Usage(prompt_tokens=event.total)
                yield frame("message_start", {"message": self.envelope([], done=False)})
            if isinstance(event, PromptProgress):
                if event.processed < event.total:
                    yield frame("ping", {})  # the prompt is still being read
            elif isinstance(event, TextDelta):
                if event.text:
                    yield from blocks.delta("text", {"type": "text_delta", "text": event.text})
            elif isinstance(event, ThinkingDelta) and event.text:
                thought = {"type": "thinking_delta", "thinking": event.text}
                yield from blocks.delta("thinking", thought)
            elif isinstance(event, ToolCallEvent):
                yield from blocks.tool_use(event.call)
            elif isinstance(event, ChoiceDone):
                self.finished(event)
                yield from blocks.close()
            elif isinstance(event, GenerationDone):
                self.usage = event.usage
        if not blocks.count:  # an empty answer is still one (empty) text block
            yield from blocks.delta("text", None)
            yield from blocks.close()
        ending = {"stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence}
        yield frame("message_delta", {"delta": ending, "usage": usage_json(self.usage)})
        yield frame("message_stop", {})


class _Blocks:
    """The content blocks of a streamed message: one open at a time, indexed from 0."""

    def __init__(self) -> None:
        self.count = 0
        self.open: str | None = None

    def delta(self, kind: str, delta: dict[str, Any] | None) -> Iterator[str]:
        """``delta`` in a block of ``kind``, which opens (closing another) if need be."""
        if self.open != kind:
            yield from self.close()
            start: dict[str, Any] = {"type": "text", "text": ""}
            if kind == "thinking":
                start = {"type": "thinking", "thinking": "", "signature": ""}
            yield self._start(kind, start)
        if delta is not None:
            yield frame("content_block_delta", {"index": self.count - 1, "delta": delta})

    def tool_use(self, call: ToolCall) -> Iterator[str]:
        """A whole ``tool_use`` block: its start, its input as one JSON delta, its stop."""
        yield from self.close()
        block = tool_use_block(call)
        yield self._start("tool_use", {**block, "input": {}})
        partial = compact_json(call.arguments)
        delta = {"type": "input_json_delta", "partial_json": partial}
        yield frame("content_block_delta", {"index": self.count - 1, "delta": delta})
        yield from self.close()

    def _start(self, kind: str, block: dict[str, Any]) -> str:
        self.open = kind
        self.count += 1
        return frame("content_block_start", {"index": self.count - 1, "content_block": block})

    def close(self) -> Iterator[str]:
        if self.open is not None:
            self.open = None
            yield frame("content_block_stop", {"index": self.count - 1})


def frame(kind: str, payload: dict[str, Any]) -> str:
    """One server-sent event: its name, and its data with the same ``type``."""
    return f"event: {kind}\ndata: {compact_json({'type': kind, **payload})}\n\n"


def _event_response(frames: Iterator[str], cancel: Callable[[], None]) -> Response:
    return Response(
        _guarded(frames, cancel),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _guarded(frames: Iterator[str], cancel: Callable[[], None]) -> Iterator[str]:
    """``frames``; an error once they began is an ``error`` event (see
    :func:`power_core.server.streams.guarded_stream`)."""

    def in_band(exc: PowerError | None) -> list[str]:
        return [frame("error", {"error": stream_error_body(exc)["error"]})]

    return guarded_stream(frames, cancel, in_band, log)

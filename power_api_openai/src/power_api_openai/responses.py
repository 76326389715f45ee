"""``POST /v1/responses``: one generation as a Responses API ``response`` or its events.

One :class:`ResponseBuilder` turns the generation's events into output items (a
``reasoning`` item for a thinking model's reasoning, a ``message`` for the text, one
``function_call`` per tool call) and, for a stream, into the semantic events OpenAI sends:
``response.created``, ``response.in_progress``, then per item ``output_item.added``, its
deltas and ``output_item.done``, and last ``response.completed`` (or
``response.incomplete`` when ``max_output_tokens`` cut the output). Every event carries a
``sequence_number``; each SSE frame names its event, and no ``[DONE]`` follows. An answer
that is not streamed is the same builder's final response.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from flask import Response

from power_api_openai.background_responses import BackgroundRun, BackgroundRuns
from power_api_openai.chat import tool_call_json
from power_api_openai.conversation_store import ConversationStore
from power_api_openai.errors import error_body, json_response, power_error_body, power_error_status
from power_api_openai.logprobs import chat_token_logprobs
from power_api_openai.merge import merged_events
from power_api_openai.reasoning_effort import apply_reasoning_effort
from power_api_openai.response_ids import item_id
from power_api_openai.response_store import ResponseStore
from power_api_openai.responses_continued import continued_body, keep_response
from power_api_openai.responses_request import ResponsesOptions, parse_responses_request
from power_api_openai.sampling import with_openai_defaults
from power_api_openai.sse import PING, event_frame, sse_response
from power_core.errors import PowerError
from power_core.generation import GenerationStream
from power_core.models import ResolvedModel
from power_core.server.direct import DirectWriter, direct_writer, write_text_directly
from power_core.server.disconnect import (
    cancel_if_client_leaves_while_queued,
    cancel_when_client_leaves,
)
from power_core.server.streams import guarded_stream
from power_core.services import PowerServices
from power_core.types import (
    ChoiceDone,
    GenerationDone,
    GenerationEvent,
    PromptProgress,
    TextDelta,
    ThinkingDelta,
    ToolCallEvent,
    Usage,
)

log = logging.getLogger("power_api_openai")


def create_response(
    services: PowerServices,
    body: dict[str, Any],
    store: ResponseStore,
    conversations: ConversationStore,
    runs: BackgroundRuns,
) -> Response:
    """Validate, start generating (errors so far are plain 4xx/5xx), then answer or stream,
    or leave it to run in the background (``runs``); a finished response is kept in
    ``store`` unless the request says ``store: false``, and added to the conversation it
    names."""
    continued = continued_body(body, store, conversations)
    request, options = parse_responses_request(continued.body)
    options.previous_response_id = continued.continues
    options.conversation_id = continued.conversation_id
    model = services.library.resolve(request.model)
    request.sampling = with_openai_defaults(request.sampling, model)
    apply_reasoning_effort(model, request, options.reasoning.get("effort"), "reasoning.effort")
    stream = services.generate(request, model)
    sampling = echoed_sampling(request.sampling, model)
    builder = ResponseBuilder(stream.model.name, options, sampling)

    def finished() -> None:
        if builder.status in ("completed", "incomplete"):
            keep_response(continued, builder.response(), builder.output, store, conversations)

    if options.background:

        def run_events(run: BackgroundRun) -> Iterator[dict[str, Any]]:
            def unless_cancelled() -> None:
                # a cancelled run ends as a complete one would: it is kept as cancelled,
                # and adds nothing to its conversation
                if not run.cancelled:
                    finished()

            return guarded_events(stream, builder, unless_cancelled)

        run = runs.start(
            builder,
            stream,
            run_events,
            lambda response: store.put(response, *continued.stored_with(builder.output)),
        )
        if options.stream:  # the client may leave: the run goes on, to be followed again
            return sse_response(followed_frames(run, -1), lambda: None, end=None)
        return json_response(run.queued)
    if options.stream:
        cancel_if_client_leaves_while_queued(stream)
        frames = response_events(stream, builder, direct_writer(), finished)
        return sse_response(frames, stream.cancel, end=None, error_frames=builder.failed_frames)
    cancel_when_client_leaves(stream)
    try:
        for event in stream:
            builder.feed(event)
        builder.finish()
        finished()
        return json_response(builder.response())
    finally:
        stream.cancel()  # a no-op after a complete generation; frees the slot after an error


def followed_frames(run: BackgroundRun, after: int) -> Iterator[str]:
    """The SSE frames of a background run's events after sequence number ``after``."""
    for frame in run.follow(after):
        yield PING if frame is None else frame


def count_input_tokens(
    services: PowerServices,
    body: dict[str, Any],
    store: ResponseStore,
    conversations: ConversationStore,
) -> dict[str, Any]:
    """``POST /v1/responses/input_tokens``: the tokens a response to ``body`` would read,
    its instructions, tools, earlier response or conversation included, as the model's
    template lays them out. Without ``model``, a continuation counts with the model of the
    response it continues (OpenAI's ``model`` is optional here)."""
    earlier = body.get("previous_response_id")
    if "model" not in body and isinstance(earlier, str):
        kept = store.response(earlier)
        if kept is not None:
            body = {**body, "model": kept["model"]}
    continued = continued_body(body, store, conversations)
    request, options = parse_responses_request(continued.body)
    model = services.library.resolve(request.model)
    apply_reasoning_effort(model, request, options.reasoning.get("effort"), "reasoning.effort")
    return {"object": "response.input_tokens", "input_tokens": services.prompt_token_count(request)}


def echoed_sampling(sampling: dict[str, Any], model: ResolvedModel) -> dict[str, Any]:
    """``temperature`` and ``top_p`` as the generation uses them, for the response."""
    return {
        key: float(sampling.get(key, model.parameters.get(key, 1.0)))
        for key in ("temperature", "top_p")
    }


def response_events(
    stream: GenerationStream,
    builder: ResponseBuilder,
    writer: DirectWriter | None,
    finished: Callable[[], None] = lambda: None,
) -> Iterator[str]:
    """The SSE frames of a streamed response.

    With a ``writer`` and plain text to stream (no tools, no reasoning, no
    log-probabilities), the message opens at once and its deltas go from the engine's
    thread straight to the client (:mod:`power_core.server.direct`); the builder keeps
    their text and sequence numbers all the same.
    """
    yield from map(event_frame, builder.start())
    if writer is not None and stream.can_deliver_text_directly:
        yield from map(event_frame, builder.open_message())
        write_text_directly(stream, writer, direct_delta(builder, writer))
    for event in builder_events(stream, builder, finished):
        # None: the prompt is still being read, so keep the connection alive
        yield PING if event is None else event_frame(event)


def guarded_events(
    stream: GenerationStream,
    builder: ResponseBuilder,
    finished: Callable[[], None],
    *,
    socket_shape: bool = False,
) -> Generator[dict[str, Any], None, None]:
    """The response's events (for a WebSocket or a background run), ``finished`` called
    before the last; an error on the way ends them with an ``error`` event (in the
    WebSocket mode's shape with ``socket_shape``) and ``response.failed``. Closing them
    cancels the generation."""

    def started() -> Iterator[dict[str, Any]]:
        yield from builder.start()
        events = builder_events(stream, builder, finished)
        yield from (event for event in events if event is not None)

    def failed(exc: PowerError | None) -> list[dict[str, Any]]:
        status = 500 if exc is None else power_error_status(exc)
        body = (
            error_body("internal error while generating", status=500)
            if exc is None
            else power_error_body(exc)
        )
        return builder.failed_events(body, status=status if socket_shape else None)

    yield from guarded_stream(started(), stream.cancel, failed, log)


def builder_events(
    stream: GenerationStream,
    builder: ResponseBuilder,
    finished: Callable[[], None] = lambda: None,
) -> Iterator[dict[str, Any] | None]:
    """The events ``builder`` makes of the rest of ``stream``, its last one included;
    ``None`` now and then while the prompt is read. ``finished`` is called once the
    response is whole, before its last events: a client that has read them finds it kept."""
    for _, event in merged_events([stream]):
        if isinstance(event, PromptProgress):
            if event.processed < event.total:
                yield None
            continue
        yield from builder.feed(event)
    last = builder.finish()
    finished()
    yield from last


def direct_delta(builder: ResponseBuilder, writer: DirectWriter) -> Callable[[str], bytes]:
    """The frame of a text delta for the engine's thread to write, made only when the
    writer will take it: a piece it declines (a slow client's bytes still pending, a
    client gone) comes through the builder's :meth:`~ResponseBuilder.feed` instead, and
    must not be counted twice."""

    def frame(text: str) -> bytes:
        if not writer.ready():
            return b""  # declined: nothing written, nothing counted
        return event_frame(builder.text_delta(text)).encode()

    return frame


class ResponseBuilder:
    """The output items of one response, built from generation events; also its events."""

    def __init__(self, model: str, options: ResponsesOptions, sampling: dict[str, Any]) -> None:
        self.id = item_id("resp")
        self.created_at = int(time.time())
        self.model = model
        self.options = options
        self.sampling = sampling
        self.output: list[dict[str, Any]] = []
        self.usage = Usage()
        self.status = "in_progress"
        self._sequence = 0
        #: the item whose deltas are arriving: a message or a reasoning item, and its text
        self._open: dict[str, Any] | None = None
        self._text: list[str] = []
        self._logprobs: list[dict[str, Any]] = []
        self._cut_short = False

    # ------------------------------------------------------------------ events
    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def start(self) -> list[dict[str, Any]]:
        """``response.created`` and ``response.in_progress``."""
        return [
            self._event("response.created", response=self.response()),
            self._event("response.in_progress", response=self.response()),
        ]

    def feed(self, event: GenerationEvent) -> list[dict[str, Any]]:
        """Take one generation event; returns the stream events it makes."""
        if isinstance(event, TextDelta):
            events = self.open_message()
            if event.text or event.logprobs:
                events.append(self.text_delta(event.text, chat_token_logprobs(event.logprobs)))
            return events
        if isinstance(event, ThinkingDelta):
            events = self._open_reasoning()
            self._text.append(event.text)
            assert self._open is not None
            events.append(
                self._event(
                    "response.reasoning_text.delta",
                    item_id=self._open["id"],
                    output_index=len(self.output) - 1,
                    content_index=0,
                    delta=event.text,
                )
            )
            return events
        if isinstance(event, ToolCallEvent):
            return [*self._close(), *self._function_call(event)]
        if isinstance(event, ChoiceDone):
            self._cut_short = event.reason == "length"
        elif isinstance(event, GenerationDone):
            self.usage = event.usage
        return []

    def open_message(self) -> list[dict[str, Any]]:
        """Open the assistant message (if it is not the open item): its events."""
        if self._open is not None and self._open["type"] == "message":
            return []
        message = {
            "id": item_id("msg"),
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        return self._open_item(message, _output_text("", []))

    def text_delta(self, text: str, logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The ``response.output_text.delta`` event of answer text (message open)."""
        assert self._open is not None and self._open["type"] == "message"
        self._text.append(text)
        self._logprobs.extend(logprobs or [])
        return self._event(
            "response.output_text.delta",
            item_id=self._open["id"],
            output_index=len(self.output) - 1,
            content_index=0,
            delta=text,
            logprobs=logprobs or [],
        )

    def _open_reasoning(self) -> list[dict[str, Any]]:
        if self._open is not None and self._open["type"] == "reasoning":
            return []
        reasoning = {"id": item_id("rs"), "type": "reasoning", "summary": [], "content": []}
        return self._open_item(reasoning, _reasoning_text(""))

    def _open_item(self, item: dict[str, Any], part: dict[str, Any]) -> list[dict[str, Any]]:
        """Close the open item, open ``item`` with its first, empty content ``part``: the
        events of both."""
        events = self._close()
        self._open = item
        index = len(self.output)
        self.output.append(item)
        events.append(self._event("response.output_item.added", output_index=index, item=item))
        events.append(
            self._event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=part,
            )
        )
        return events

    def _close(self) -> list[dict[str, Any]]:
        """Finish the open item: its done events, its full content in :attr:`output`."""
        item, self._open = self._open, None
        if item is None:
            return []
        index = self.output.index(item)
        text, self._text = "".join(self._text), []
        common = {"item_id": item["id"], "output_index": index, "content_index": 0}
        if item["type"] == "reasoning":
            part = _reasoning_text(text)
            item["content"] = [part]
            events = [
                self._event("response.reasoning_text.done", **common, text=text),
                self._event("response.content_part.done", **common, part=part),
            ]
        else:
            logprobs, self._logprobs = self._logprobs, []
            part = _output_text(text, logprobs if self.options.logprobs else [])
            item["content"] = [part]
            item["status"] = "incomplete" if self._cut_short else "completed"
            events = [
                self._event("response.output_text.done", **common, text=text, logprobs=logprobs),
                self._event("response.content_part.done", **common, part=part),
            ]
        events.append(self._event("response.output_item.done", output_index=index, item=item))
        return events

    def _function_call(self, event: ToolCallEvent) -> list[dict[str, Any]]:
        call = tool_call_json(event.call)
        arguments = call["function"]["arguments"]
        item = {
            "id": item_id("fc"),
            "type": "function_call",
            "status": "in_progress",
            "call_id": call["id"],
            "name": event.call.name,
            "arguments": "",
        }
        index = len(self.output)
        self.output.append(item)
        added = self._event("response.output_item.added", output_index=index, item=dict(item))
        common = {"item_id": item["id"], "output_index": index}
        delta = self._event("response.function_call_arguments.delta", **common, delta=arguments)
        item["arguments"] = arguments
        done = self._event(
            "response.function_call_arguments.done",
            **common,
            name=event.call.name,
            arguments=arguments,
        )
        item["status"] = "completed"
        return [added, delta, done, self._event("response.output_item.done", **common, item=item)]

    def finish(self, *, no_output: bool = False) -> list[dict[str, Any]]:
        """Close the open item, then ``response.completed`` (or ``.incomplete``); an answer
        with no text and no calls is one empty message unless ``no_output`` (a turn only
        prepared)."""
        events = []
        if not self.output and self._open is None and not no_output:
            events = self.open_message()  # no text and no calls: still one (empty) message
        events += self._close()
        self.status = "incomplete" if self._cut_short else "completed"
        events.append(self._event(f"response.{self.status}", response=self.response()))
        return events

    def failed_frames(self, body: dict[str, Any]) -> list[str]:
        """An error after the stream began: an ``error`` event, then ``response.failed``."""
        return [event_frame(event) for event in self.failed_events(body)]

    def failed_events(
        self, body: dict[str, Any], status: int | None = None
    ) -> list[dict[str, Any]]:
        """The events of :meth:`failed_frames`; with a ``status``, the ``error`` event takes
        the WebSocket mode's shape (``status`` beside the whole ``error`` object)."""
        error = body["error"]
        self.status = "failed"
        if status is None:
            fields = {"code": error["code"], "message": error["message"], "param": error["param"]}
        else:
            fields = {"status": status, "error": error}
        return [
            self._event("error", **fields),
            self._event("response.failed", response=self.response(error)),
        ]

    # ------------------------------------------------------------------ the response object
    def response(self, error: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``response`` object as it stands."""
        options = self.options
        done = self.status in ("completed", "incomplete", "failed")
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": self.status,
            "background": options.background,
            "error": (
                {"code": _response_error_code(error), "message": error["message"]}
                if error is not None
                else None
            ),
            "incomplete_details": (
                {"reason": "max_output_tokens"} if self.status == "incomplete" else None
            ),
            "instructions": options.instructions,
            "max_output_tokens": options.max_output_tokens,
            "max_tool_calls": options.max_tool_calls,
            "model": self.model,
            "output": [dict(item) for item in self.output],
            "parallel_tool_calls": options.parallel_tool_calls,
            "previous_response_id": options.previous_response_id,
            "conversation": (
                {"id": options.conversation_id} if options.conversation_id is not None else None
            ),
            "prompt_cache_key": options.prompt_cache_key,
            "reasoning": options.reasoning,
            "safety_identifier": options.safety_identifier,
            "store": options.store,
            "temperature": self.sampling["temperature"],
            "text": options.text,
            "tool_choice": options.tool_choice,
            "tools": options.tools,
            "top_logprobs": options.top_logprobs,
            "top_p": self.sampling["top_p"],
            "truncation": options.truncation,
            "usage": _usage_json(self.usage) if done and error is None else None,
            "user": options.user,
            "metadata": options.metadata,
        }


def _response_error_code(error: dict[str, Any]) -> str:
    """A failed response's ``error.code``, one of OpenAI's: a busy server's error is
    ``rate_limit_exceeded``, any other ``server_error`` (the ``error`` event before it
    carries our own code)."""
    return "rate_limit_exceeded" if error["type"] == "rate_limit_exceeded" else "server_error"


def _output_text(text: str, logprobs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}


def _reasoning_text(text: str) -> dict[str, Any]:
    return {"type": "reasoning_text", "text": text}


def _usage_json(usage: Usage) -> dict[str, Any]:
    """The Responses API's ``usage``: input and output tokens, with the cached ones."""
    return {
        "input_tokens": usage.prompt_tokens,
        # what the model read anew stays in its sequence's cache for the next request
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.prompt_tokens - usage.cached_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }

"""``POST /v1/chat/completions``: one generation rendered as a chat completion or its chunks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flask import Response

from power_api_openai.chat_request import ChatOptions, parse_chat_request
from power_api_openai.envelope import Envelope, finish_reason, usage_json
from power_api_openai.errors import json_response
from power_api_openai.legacy_functions import function_call_json, uses_functions, with_tools
from power_api_openai.logprobs import chat_logprobs
from power_api_openai.merge import merged_events
from power_api_openai.reasoning_effort import apply_reasoning_effort
from power_api_openai.sampling import with_openai_defaults
from power_api_openai.sse import PING, data_frame, sse_response
from power_core.chat.tool_calls import new_call_id
from power_core.errors import ContextLengthExceeded
from power_core.generation import GenerationStream
from power_core.server.direct import DirectWriter, direct_writer, write_text_directly
from power_core.server.disconnect import (
    cancel_if_client_leaves_while_queued,
    cancel_when_client_leaves,
)
from power_core.services import PowerServices
from power_core.types import (
    ChoiceDone,
    FinishReason,
    GenerationDone,
    PromptProgress,
    TextDelta,
    ThinkingDelta,
    TokenLogprob,
    ToolCall,
    ToolCallEvent,
    Usage,
)

CHUNK = "chat.completion.chunk"


def create_chat_completion(services: PowerServices, body: dict[str, Any]) -> Response:
    """Validate, start generating (errors so far are plain 4xx/5xx), then answer or stream."""
    request, options = parse_chat_request(with_tools(body))
    options.legacy_functions = uses_functions(body)
    model = services.library.resolve(request.model)
    request.sampling = with_openai_defaults(request.sampling, model)
    apply_reasoning_effort(model, request, options.reasoning_effort, "reasoning_effort")
    try:
        stream = services.generate(request, model)
    except ContextLengthExceeded as exc:  # OpenAI names the conversation, not a prompt
        raise ContextLengthExceeded(exc.message, param="messages") from exc
    envelope = Envelope.for_model("chatcmpl", stream.model)
    if options.stream:
        cancel_if_client_leaves_while_queued(stream)
        return sse_response(chat_chunks(stream, envelope, options, direct_writer()), stream.cancel)
    cancel_when_client_leaves(stream)
    try:
        return json_response(chat_completion(stream, envelope, options))
    finally:
        stream.cancel()  # a no-op after a complete generation; frees the slot after an error


def tool_call_json(call: ToolCall) -> dict[str, Any]:
    """A tool call as OpenAI sends it: the arguments as a JSON string."""
    return {
        "id": call.id or new_call_id(),
        "type": "function",
        "function": {
            "name": call.name,
            "arguments": json.dumps(call.arguments, ensure_ascii=False),
        },
    }


@dataclass
class _Choice:
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    reason: str = "stop"


def chat_completion(
    stream: GenerationStream, envelope: Envelope, options: ChatOptions
) -> dict[str, Any]:
    """Consume the whole generation into one ``chat.completion`` object."""
    choices = [_Choice() for _ in range(stream.request.n)]
    usage = Usage()
    for event in stream:
        if isinstance(event, TextDelta):
            choices[event.choice].text.append(event.text)
            choices[event.choice].logprobs.extend(event.logprobs)
        elif isinstance(event, ThinkingDelta):
            choices[event.choice].reasoning.append(event.text)
        elif isinstance(event, ToolCallEvent):
            choices[event.choice].calls.append(event.call)
        elif isinstance(event, ChoiceDone):
            choices[event.choice].reason = _finish(event.reason, options)
        elif isinstance(event, GenerationDone):
            usage = event.usage
    return envelope.object(
        "chat.completion",
        choices=[
            {
                "index": index,
                "message": _message(choice, options),
                "logprobs": chat_logprobs(choice.logprobs) if options.logprobs else None,
                "finish_reason": choice.reason,
            }
            for index, choice in enumerate(choices)
        ],
        usage=usage_json(usage),
    )


def _finish(reason: FinishReason, options: ChatOptions) -> str:
    finish = finish_reason(reason)
    return "function_call" if options.legacy_functions and finish == "tool_calls" else finish


def _message(choice: _Choice, options: ChatOptions) -> dict[str, Any]:
    text = "".join(choice.text)
    message: dict[str, Any] = {
        "role": "assistant",
        # OpenAI sends null content for a reply that is only tool calls
        "content": None if choice.calls and not text else text,
        "refusal": None,
    }
    if choice.calls and options.legacy_functions:
        message["function_call"] = function_call_json(tool_call_json(choice.calls[0]))
    elif choice.calls:
        message["tool_calls"] = [tool_call_json(call) for call in choice.calls]
    if choice.reasoning:
        message["reasoning_content"] = "".join(choice.reasoning)
    return message


def chat_chunks(
    stream: GenerationStream,
    envelope: Envelope,
    options: ChatOptions,
    writer: DirectWriter | None = None,
) -> Iterator[str]:
    """The ``chat.completion.chunk`` frames of a generation, every choice by its index.

    Each choice opens with a role delta, then carries content, reasoning or tool-call deltas
    (name and id first, the arguments after), then a delta with its ``finish_reason``. With
    ``include_usage`` a last chunk has no choices and the usage; the others have
    ``usage: null``. With a ``writer`` and one choice, that choice opens at once and plain
    content goes from the engine's thread straight to the client
    (:mod:`power_core.server.direct`).
    """
    extra: dict[str, Any] = {"usage": None} if options.include_usage else {}
    opened: set[int] = set()
    usage = Usage()

    def chunk(
        index: int,
        delta: dict[str, Any],
        *,
        finish: str | None = None,
        logprobs: list[TokenLogprob] | None = None,
    ) -> str:
        choice = {
            "index": index,
            "delta": delta,
            "logprobs": chat_logprobs(logprobs) if logprobs is not None else None,
            "finish_reason": finish,
        }
        return data_frame(envelope.object(CHUNK, choices=[choice], **extra))

    def open_choice(index: int, content: str | None = "") -> Iterator[str]:
        # an answer that is only tool calls opens with no content, as OpenAI's do
        if index not in opened:
            opened.add(index)
            yield chunk(index, {"role": "assistant", "content": content, "refusal": None})

    if writer is not None and stream.request.n == 1:
        # the role chunk comes first, and it sends the headers; a forced call is known to
        # be an answer without content
        yield from open_choice(0, None if stream.request.forces_calls else "")
        write_text_directly(stream, writer, lambda text: chunk(0, {"content": text}).encode())
    for _, event in merged_events([stream]):
        if isinstance(event, PromptProgress):
            if event.processed < event.total:
                yield PING  # the prompt is still being read: keep the connection alive
        elif isinstance(event, TextDelta):
            if event.text or event.logprobs:
                yield from open_choice(event.choice)
                logprobs = event.logprobs if options.logprobs else None
                yield chunk(event.choice, {"content": event.text}, logprobs=logprobs)
        elif isinstance(event, ThinkingDelta):
            yield from open_choice(event.choice)
            yield chunk(event.choice, {"reasoning_content": event.text})
        elif isinstance(event, ToolCallEvent):
            yield from open_choice(event.choice, None)
            call = tool_call_json(event.call)
            arguments = call["function"]["arguments"]
            call["function"]["arguments"] = ""
            if options.legacy_functions:
                if event.index > 0:
                    continue  # one function_call per answer, as the old API has
                yield chunk(event.choice, {"function_call": function_call_json(call)})
                yield chunk(event.choice, {"function_call": {"arguments": arguments}})
                continue
            yield chunk(event.choice, {"tool_calls": [{"index": event.index, **call}]})
            yield chunk(
                event.choice,
                {"tool_calls": [{"index": event.index, "function": {"arguments": arguments}}]},
            )
        elif isinstance(event, ChoiceDone):
            yield from open_choice(event.choice)
            yield chunk(event.choice, {}, finish=_finish(event.reason, options))
        elif isinstance(event, GenerationDone):
            usage = event.usage
    if options.include_usage:
        yield data_frame(envelope.object(CHUNK, choices=[], usage=usage_json(usage)))

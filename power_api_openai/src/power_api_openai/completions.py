"""``POST /v1/completions``: raw prompts continued, one generation per prompt.

Choice ``i`` of prompt ``p`` has index ``p * n + i``, as in OpenAI's API. Every prompt's
generation starts before the response does, so a bad prompt is a plain 4xx.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from flask import Response

from power_api_openai.envelope import Envelope, finish_reason, usage_json
from power_api_openai.errors import json_response
from power_api_openai.logprobs import CompletionLogprobs
from power_api_openai.merge import cancel_all, merged_events
from power_api_openai.sampling import sampling_fields, with_openai_defaults
from power_api_openai.sse import PING, data_frame, sse_response
from power_api_openai.validation import Fields, invalid_type
from power_core.errors import InvalidRequest, UnsupportedFeature
from power_core.generation import GenerationStream
from power_core.models import ResolvedModel
from power_core.server.direct import DirectWriter, direct_writer, write_text_directly
from power_core.server.disconnect import (
    cancel_if_client_leaves_while_queued,
    cancel_when_client_leaves,
)
from power_core.services import PowerServices
from power_core.types import (
    ChoiceDone,
    GenerationDone,
    GenerationRequest,
    PromptProgress,
    TextDelta,
    Usage,
)

OBJECT = "text_completion"
#: OpenAI's default ``max_tokens`` for legacy completions
DEFAULT_MAX_TOKENS = 16

Prompt = str | list[int]


@dataclass
class CompletionOptions:
    """What shapes the response rather than the generation."""

    prompts: list[Prompt]
    n: int
    echo: bool
    logprobs: int | None
    stream: bool
    include_usage: bool


def parse_prompts(value: Any) -> list[Prompt]:
    """``prompt``: a string, strings, a token array or token arrays; one generation each."""
    expected = "a string, an array of strings, an array of token ids or an array of token arrays"
    if value is None:
        raise InvalidRequest("Missing required parameter: 'prompt'.", param="prompt")
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise invalid_type("prompt", expected, value)
    if not value:
        raise InvalidRequest("'prompt' must not be an empty array.", param="prompt")
    if all(isinstance(item, str) for item in value):
        return list(value)
    if all(_is_token(item) for item in value):
        return [list(value)]
    if all(isinstance(item, list) and item and all(_is_token(t) for t in item) for item in value):
        return [list(item) for item in value]
    raise invalid_type("prompt", expected, value)


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_completion_request(body: dict[str, Any]) -> tuple[GenerationRequest, CompletionOptions]:
    """A template request (``prompt`` filled in per prompt later) and the response options."""
    fields = Fields(body)
    model = fields.model()
    prompts = parse_prompts(fields.raw("prompt"))
    stream = fields.boolean("stream")
    include_usage = fields.stream_options(stream)
    n = fields.n()
    best_of = fields.integer("best_of", 1)
    if best_of is not None and best_of != n:
        if best_of < n:
            raise InvalidRequest("'best_of' must be greater than or equal to 'n'.", param="best_of")
        raise UnsupportedFeature("'best_of' greater than 'n' is not supported.", param="best_of")
    echo = fields.boolean("echo")
    logprobs = fields.integer("logprobs", 0, 5)
    if echo and logprobs is not None:
        raise UnsupportedFeature(
            "'echo' with 'logprobs' (log-probabilities of the prompt) is not supported.",
            param="echo",
        )
    if echo and any(not isinstance(prompt, str) for prompt in prompts):
        raise UnsupportedFeature("'echo' is only supported for text prompts.", param="echo")
    suffix = fields.string("suffix")
    fields.string("user")
    request = GenerationRequest(
        model=model,
        raw=True,
        # an empty suffix asks for nothing to follow the completion: no fill-in-the-middle
        suffix=suffix or None,
        sampling=sampling_fields(fields),
        max_tokens=fields.integer("max_tokens", 0),
        stop=fields.stop(),
        n=n,
        logprobs=logprobs,
    )
    return request, CompletionOptions(prompts, n, echo, logprobs, stream, include_usage)


def create_completion(services: PowerServices, body: dict[str, Any]) -> Response:
    """Validate, start one generation per prompt, then answer or stream."""
    template, options = parse_completion_request(body)
    model = services.library.resolve(template.model)
    template.sampling = with_openai_defaults(template.sampling, model)
    template.max_tokens = _max_tokens(template.max_tokens, model)
    streams: list[GenerationStream] = []
    try:
        for prompt in options.prompts:
            if isinstance(prompt, str):
                request = replace(template, prompt=prompt)
            else:  # token ids travel as the context before an empty text prompt
                request = replace(template, prompt="", context=prompt)
            if streams:  # the same loaded model, without waiting on it a second time
                streams.append(services.generate_beside(streams[0], request))
            else:
                streams.append(services.generate(request, model))
                _check_room_for(len(options.prompts), streams[0])
    except BaseException:
        cancel_all(streams)
        raise
    envelope = Envelope.for_model("cmpl", streams[0].model)
    if options.stream:
        cancel_if_client_leaves_while_queued(*streams)
        return sse_response(
            completion_chunks(streams, envelope, options, direct_writer()),
            lambda: cancel_all(streams),
        )
    cancel_when_client_leaves(*streams)
    try:
        return json_response(completion(streams, envelope, options))
    finally:
        cancel_all(streams)


def _check_room_for(prompts: int, stream: GenerationStream) -> None:
    """A 400 for more prompts than the loaded model ever takes at once (its sequences and
    its queue): such a request could never run, however long the client waited, so the
    busy server's 503 would be wrong."""
    options = stream.entry.options
    most = options.num_parallel + options.max_queue
    if prompts > most:
        raise InvalidRequest(
            f"{prompts} prompts in one request, but model '{stream.model.name}' takes at most "
            f"{most} at once (num_parallel {options.num_parallel} + max_queue "
            f"{options.max_queue}); send them in smaller requests.",
            param="prompt",
        )


def _max_tokens(requested: int | None, model: ResolvedModel) -> int | None:
    """The request's limit, else the Modelfile's ``num_predict``, else OpenAI's 16."""
    if requested is not None or "num_predict" in model.parameters:
        return requested
    return DEFAULT_MAX_TOKENS


@dataclass
class _Choice:
    text: list[str] = field(default_factory=list)
    logprobs: CompletionLogprobs | None = None
    reason: str = "stop"


def _echoed(options: CompletionOptions, prompt_index: int) -> str:
    prompt = options.prompts[prompt_index]
    return prompt if options.echo and isinstance(prompt, str) else ""


def completion(
    streams: list[GenerationStream], envelope: Envelope, options: CompletionOptions
) -> dict[str, Any]:
    """Consume every generation into one ``text_completion`` object."""
    n = options.n
    choices = []
    for index in range(len(streams) * n):
        echoed = _echoed(options, index // n)
        logprobs = CompletionLogprobs(len(echoed)) if options.logprobs is not None else None
        choices.append(_Choice(text=[echoed], logprobs=logprobs))
    usage = Usage()
    for prompt_index, event in merged_events(streams):
        if isinstance(event, TextDelta):
            choice = choices[prompt_index * n + event.choice]
            choice.text.append(event.text)
            if choice.logprobs is not None:
                choice.logprobs.add(event.logprobs)
        elif isinstance(event, ChoiceDone):
            choices[prompt_index * n + event.choice].reason = finish_reason(event.reason)
        elif isinstance(event, GenerationDone):
            usage = _add_usage(usage, event.usage)
    return envelope.object(
        OBJECT,
        choices=[
            {
                "text": "".join(choice.text),
                "index": index,
                "logprobs": choice.logprobs.json() if choice.logprobs is not None else None,
                "finish_reason": choice.reason,
            }
            for index, choice in enumerate(choices)
        ],
        usage=usage_json(usage),
    )


def _add_usage(total: Usage, more: Usage) -> Usage:
    return Usage(
        prompt_tokens=total.prompt_tokens + more.prompt_tokens,
        cached_tokens=total.cached_tokens + more.cached_tokens,
        completion_tokens=total.completion_tokens + more.completion_tokens,
        reasoning_tokens=total.reasoning_tokens + more.reasoning_tokens,
    )


def completion_chunks(
    streams: list[GenerationStream],
    envelope: Envelope,
    options: CompletionOptions,
    writer: DirectWriter | None = None,
) -> Iterator[str]:
    """``text_completion`` chunks: the echoed prompt first, text as it comes, then each
    choice's ``finish_reason``; with ``include_usage`` a last chunk with the total usage.

    With a ``writer`` and a single generation, the headers go out at once and plain text
    goes from the engine's thread straight to the client (:mod:`power_core.server.direct`).
    """
    n = options.n
    extra: dict[str, Any] = {"usage": None} if options.include_usage else {}
    offsets = [CompletionLogprobs(len(_echoed(options, i // n))) for i in range(len(streams) * n)]

    def chunk(
        index: int, text: str, *, finish: str | None = None, logprobs: dict[str, Any] | None = None
    ) -> str:
        choice = {"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish}
        return data_frame(envelope.object(OBJECT, choices=[choice], **extra))

    for index in range(len(streams) * n):
        echoed = _echoed(options, index // n)
        if echoed:
            yield chunk(index, echoed)
    if writer is not None and len(streams) == 1:
        write_text_directly(streams[0], writer, lambda text: chunk(0, text).encode())
    usage = Usage()
    for prompt_index, event in merged_events(streams):
        if isinstance(event, PromptProgress):
            if event.processed < event.total:
                yield PING
        elif isinstance(event, TextDelta):
            index = prompt_index * n + event.choice
            logprobs = None
            if options.logprobs is not None:
                logprobs = offsets[index].add(event.logprobs)
            if event.text or logprobs:
                yield chunk(index, event.text, logprobs=logprobs)
        elif isinstance(event, ChoiceDone):
            yield chunk(prompt_index * n + event.choice, "", finish=finish_reason(event.reason))
        elif isinstance(event, GenerationDone):
            usage = _add_usage(usage, event.usage)
    if options.include_usage:
        yield data_frame(envelope.object(OBJECT, choices=[], usage=usage_json(usage)))

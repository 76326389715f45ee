"""Ollama request bodies translated into the core's request types, validated on the way."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, get_args

from power_api_ollama.options import parse_options
from power_api_ollama.wire import (
    keep_alive,
    model_name,
    opt_bool,
    opt_int,
    opt_list,
    opt_str,
    wrong_type,
)
from power_core.errors import InvalidRequest
from power_core.server.json_body import MAX_JSON_DEPTH, nested_deeper_than
from power_core.types import (
    THINK_LEVELS,
    ChatMessage,
    EmbeddingRequest,
    GenerationRequest,
    ResponseFormat,
    Role,
    ToolCall,
    ToolSpec,
)

_ROLES: dict[str, Role] = {name: name for name in get_args(Role)}
MAX_TOP_LOGPROBS = 20


def _format(value: Any) -> ResponseFormat | None:
    if value is None or value == "":
        return None
    if value == "json":
        return ResponseFormat()
    if isinstance(value, dict):
        return ResponseFormat(schema=value)
    raise InvalidRequest("'format' must be \"json\" or a JSON Schema object", param="format")


def _think(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if value in THINK_LEVELS:
        return True
    raise InvalidRequest('\'think\' must be true, false, "low", "medium" or "high"', param="think")


def _think_level(value: Any) -> str | None:
    """The level of a ``think`` given as one (checked by :func:`_think`)."""
    return value if isinstance(value, str) and value in THINK_LEVELS else None


def _logprobs(body: dict[str, Any]) -> int | None:
    wanted = opt_bool(body, "logprobs", False)
    top = opt_int(body, "top_logprobs")
    if top is not None and not 0 <= top <= MAX_TOP_LOGPROBS:
        raise InvalidRequest(
            f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}", param="top_logprobs"
        )
    if not wanted:  # as Ollama: top_logprobs only applies when logprobs is true
        return None
    return top or 0


def _images(value: Any, key: str = "images") -> list[bytes]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise wrong_type(key, "an array of base64 strings", value)
    images = []
    for item in value:
        if not isinstance(item, str):
            raise wrong_type(key, "an array of base64 strings", item)
        try:
            images.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError):
            raise InvalidRequest(f"'{key}' holds data that is not base64", param=key) from None
    return images


def _tool_call(value: Any) -> ToolCall:
    function = value.get("function") if isinstance(value, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest("each tool call needs a 'function' with a 'name'", param="messages")
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):  # tolerated: some clients send OpenAI's JSON text
        too_deep = InvalidRequest(  # text escapes the request body's depth limit
            f"tool call 'arguments' nest deeper than {MAX_JSON_DEPTH} levels", param="messages"
        )
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            arguments = None
        except RecursionError:
            raise too_deep from None
        if nested_deeper_than(arguments):
            raise too_deep
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise InvalidRequest("tool call 'arguments' must be an object", param="messages")
    call_id = value.get("id")
    return ToolCall(
        name=function["name"], arguments=arguments, id=call_id if isinstance(call_id, str) else ""
    )


def chat_message(value: Any) -> ChatMessage:
    """One ``messages`` entry: role, content, images, tool_calls, tool_name, thinking."""
    if not isinstance(value, dict):
        raise InvalidRequest("each message must be an object", param="messages")
    given = value.get("role")
    # in any case, as Ollama reads it: "User" is a user
    role = _ROLES.get(given.lower()) if isinstance(given, str) else None
    if role is None:
        raise InvalidRequest(
            "each message needs a role: system, user, assistant or tool", param="messages"
        )
    content = value.get("content")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise InvalidRequest("message 'content' must be a string", param="messages")
    calls = value.get("tool_calls") or []
    if not isinstance(calls, list):
        raise InvalidRequest("message 'tool_calls' must be an array", param="messages")
    text_fields = {}
    for key in ("tool_name", "tool_call_id", "thinking"):
        field_value = value.get(key)
        if field_value is not None and not isinstance(field_value, str):
            raise InvalidRequest(f"message '{key}' must be a string", param="messages")
        text_fields[key] = field_value or None
    tool_name = text_fields["tool_name"]
    legacy_name = value.get("name")  # older clients name the tool in ``name``
    if tool_name is None and role == "tool" and isinstance(legacy_name, str):
        tool_name = legacy_name
    return ChatMessage(
        role=role,
        content=content,
        tool_calls=[_tool_call(call) for call in calls],
        tool_call_id=text_fields["tool_call_id"],
        tool_name=tool_name,
        thinking=text_fields["thinking"],
        images=_images(value.get("images"), "messages.images"),
    )


def _tool(value: Any) -> ToolSpec:
    function = value.get("function") if isinstance(value, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest("each tool needs a 'function' with a 'name'", param="tools")
    parameters = function.get("parameters")
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    if not isinstance(parameters, dict):
        raise InvalidRequest("tool 'parameters' must be a JSON Schema object", param="tools")
    description = function.get("description")
    return ToolSpec(
        name=function["name"],
        description=description if isinstance(description, str) else "",
        parameters=parameters,
    )


def _base_request(body: dict[str, Any]) -> GenerationRequest:
    options = parse_options(body.get("options"))
    return GenerationRequest(
        model=model_name(body),
        response_format=_format(body.get("format")),
        sampling=options.sampling,
        load=options.load,
        stop=options.stop,
        max_tokens=options.max_tokens,
        keep_alive=keep_alive(body),
        logprobs=_logprobs(body),
        think=_think(body.get("think")),
        think_level=_think_level(body.get("think")),
        # as Ollama: input too long for the context loses its oldest turns (a chat) or its
        # middle (a prompt), and a full context drops its older half and generation goes on
        fit_history=opt_bool(body, "truncate", True),
        shift_context=opt_bool(body, "shift", True) and not options.fill_context,
        keep_tokens=options.keep_tokens,
    )


def generate_request(body: dict[str, Any]) -> tuple[GenerationRequest, list[bytes]]:
    """``/api/generate``: the core request and the decoded ``images``.

    An empty ``prompt`` gives ``request.prompt == ""`` (the route loads or unloads).
    """
    request = _base_request(body)
    request.prompt = opt_str(body, "prompt") or ""
    request.suffix = opt_str(body, "suffix") or None
    request.system = opt_str(body, "system") or None
    request.template = opt_str(body, "template") or None
    request.raw = opt_bool(body, "raw", False)
    context = opt_list(body, "context")
    if context is not None:
        if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in context):
            raise InvalidRequest("'context' must be an array of token ids", param="context")
        request.context = context or None
    unloads = not request.prompt and request.keep_alive == 0  # Ollama unloads first
    if request.raw and (request.template or request.system or request.context) and not unloads:
        raise InvalidRequest("raw mode does not support template, system, or context", param="raw")
    return request, _images(body.get("images"))


def chat_request(body: dict[str, Any]) -> GenerationRequest:
    """``/api/chat``: messages (possibly empty: the route loads or unloads) and tools."""
    request = _base_request(body)
    messages = opt_list(body, "messages") or []
    request.messages = [chat_message(m) for m in messages]
    tools = opt_list(body, "tools") or []
    request.tools = [_tool(t) for t in tools]
    return request


def embed_request(body: dict[str, Any]) -> EmbeddingRequest:
    """``/api/embed``: ``input`` as a string or strings; an empty input loads only."""
    value = body.get("input")
    if value is None or value == "":
        inputs: list[str | list[int]] = []
    elif isinstance(value, str):
        inputs = [value]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        inputs = list(value)
    else:
        raise InvalidRequest(
            "invalid input type: 'input' must be a string or strings", param="input"
        )
    dimensions = opt_int(body, "dimensions")
    if dimensions is not None and dimensions < 0:
        raise InvalidRequest("'dimensions' must be positive", param="dimensions")
    return EmbeddingRequest(
        model=model_name(body),
        inputs=inputs,
        truncate=opt_bool(body, "truncate", True),
        dimensions=dimensions or None,  # Ollama's 0 is its unset value
        whole_when_wider=True,  # as Ollama, which truncates only to fewer dimensions
        keep_alive=keep_alive(body),
        load=parse_options(body.get("options")).load,
    )

"""Reading a ``/v1/responses`` body into the core's :class:`GenerationRequest`.

A request carries its conversation in ``input`` (messages, the model's earlier
``function_call`` items and their ``function_call_output`` results), after the one of the
response it continues (``previous_response_id``) or the items of its ``conversation``,
which the caller resolves first (:mod:`power_api_openai.responses_continued`).
``item_reference`` is refused with a 400 that says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, cast

from power_api_openai.chat_request import (
    ROLES,
    allowed_tools,
    attached_file_text,
    call_arguments,
    checked_name,
    chosen_function,
    content_parts,
    function_spec,
    image_from_data_url,
    json_schema_format,
    message_content,
    parse_tool_choice,
)
from power_api_openai.files import attached_bytes
from power_api_openai.sampling import sampling_fields
from power_api_openai.validation import Fields, invalid_type
from power_core.errors import InvalidRequest, UnsupportedFeature
from power_core.types import (
    ChatMessage,
    GenerationRequest,
    ResponseFormat,
    Role,
    ToolCall,
    ToolSpec,
)

log = logging.getLogger("power_api_openai")

#: ``include`` value that asks for the log-probabilities of the output text
INCLUDE_LOGPROBS = "message.output_text.logprobs"
#: the roles a message item may have (``tool`` results are ``function_call_output`` items)
MESSAGE_ROLES = tuple(role for role in ROLES if role != "tool")


@dataclass
class ResponsesOptions:
    """What shapes the response rather than the generation, and what it echoes back."""

    stream: bool
    logprobs: bool
    instructions: str | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    #: ``text`` and ``tools`` as the response object repeats them
    text: dict[str, Any] = field(default_factory=lambda: {"format": {"type": "text"}})
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    reasoning: dict[str, Any] = field(default_factory=lambda: {"effort": None, "summary": None})
    top_logprobs: int = 0
    truncation: str = "disabled"
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    #: the response this one continues (:mod:`power_api_openai.responses_continued`)
    previous_response_id: str | None = None
    #: whether the response is kept for later requests (:mod:`power_api_openai.response_store`)
    store: bool = True
    #: whether it runs on after its request returns (:mod:`power_api_openai.background_responses`)
    background: bool = False
    #: the conversation the response reads and adds to
    #: (:mod:`power_api_openai.conversation_store`)
    conversation_id: str | None = None


def parse_responses_request(body: dict[str, Any]) -> tuple[GenerationRequest, ResponsesOptions]:
    """The generation a Responses body asks for; sampling defaults are applied later."""
    fields = Fields(body)
    background = fields.boolean("background")
    if fields.has("prompt"):
        raise UnsupportedFeature("stored prompt templates are not supported.", param="prompt")
    model = fields.model()
    instructions = fields.string("instructions")
    messages = parse_input(fields.raw("input"))
    if instructions:
        messages.insert(0, ChatMessage(role="system", content=instructions))
    if not messages:
        raise InvalidRequest("'input' must contain at least one item.", param="input")
    stream = fields.boolean("stream")
    _stream_options(fields, stream)
    include = _strings(fields, "include")
    top_logprobs = fields.integer("top_logprobs", 0, 20)
    # as OpenAI: log-probabilities only when 'include' asks, 'top_logprobs' alternatives each
    want_logprobs = INCLUDE_LOGPROBS in include
    tools, tool_json = parse_function_tools(fields.array("tools") or [])
    tool_choice, tools = parse_responses_tool_choice(fields.raw("tool_choice"), tools)
    text = fields.object("text") or {}
    text_fields = Fields(text, "text.")
    text_fields.choice("verbosity", ("low", "medium", "high"), "medium")
    format_json = text_fields.object("format") or {"type": "text"}
    truncation = fields.choice("truncation", ("auto", "disabled"), "disabled")
    reasoning = fields.object("reasoning") or {}
    reasoning_fields = Fields(reasoning, "reasoning.")
    reasoning_fields.string("effort")
    reasoning_fields.string("summary")
    max_output_tokens = fields.integer("max_output_tokens", 1)
    parallel_tool_calls = fields.boolean("parallel_tool_calls", default=True)
    request = GenerationRequest(
        model=model,
        messages=messages,
        sampling=sampling_fields(fields),
        max_tokens=max_output_tokens,
        stop=fields.stop(),
        logprobs=(top_logprobs or 0) if want_logprobs else None,
        response_format=parse_text_format(format_json),
        tools=tools,
        tool_choice=tool_choice,
        format_or_call=True,
        parallel_tool_calls=parallel_tool_calls,
        # 'auto' drops the oldest turns of a conversation too long for the context
        fit_history=truncation == "auto",
    )
    store = fields.boolean("store", default=True)
    if background and not store:
        raise InvalidRequest(
            "background responses must be stored: 'store' cannot be false with them.",
            param="store",
        )
    options = ResponsesOptions(
        stream=stream,
        logprobs=want_logprobs,
        instructions=instructions,
        max_output_tokens=max_output_tokens,
        max_tool_calls=fields.integer("max_tool_calls", 0),
        metadata=parse_metadata(fields),
        text={**text, "format": format_json},
        tools=tool_json,
        tool_choice=fields.raw("tool_choice") or "auto",
        parallel_tool_calls=parallel_tool_calls,
        reasoning={"effort": None, "summary": None, **reasoning},
        top_logprobs=top_logprobs or 0,
        truncation=truncation,
        user=fields.string("user"),
        safety_identifier=fields.string("safety_identifier"),
        prompt_cache_key=fields.string("prompt_cache_key"),
        store=bool(store),
        background=background,
    )
    return request, options


def _stream_options(fields: Fields, stream: bool) -> None:
    options = fields.object("stream_options")
    if options is not None and not stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    if options is not None:
        Fields(options, "stream_options.").boolean("include_obfuscation")


def _strings(fields: Fields, name: str) -> list[str]:
    values = fields.array(name) or []
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise invalid_type(f"{name}[{index}]", "a string", value)
    return cast(list[str], values)


def parse_metadata(fields: Fields) -> dict[str, str]:
    """``metadata``: at most 16 string pairs, keys up to 64 and values up to 512 characters."""
    value = fields.object("metadata") or {}
    if len(value) > 16:
        raise InvalidRequest("'metadata' may have at most 16 keys.", param="metadata")
    for key, item in value.items():
        if not isinstance(item, str):
            raise invalid_type(f"metadata.{key}", "a string", item)
        if len(key) > 64 or len(item) > 512:
            raise InvalidRequest(
                f"'metadata.{key}': keys may have up to 64 characters and values up to 512.",
                param="metadata",
            )
    return dict(value)


# ----------------------------------------------------------------------------- input items
def parse_input(value: Any, name: str = "input") -> list[ChatMessage]:
    """``input``: a string (one user message) or a list of items, as core messages;
    errors name the parameter ``name`` (a conversation's ``items`` are read alike).

    A ``function_call`` item joins the assistant message just before it (an answer with
    text and calls is one turn), a ``reasoning`` item becomes the next assistant turn's
    thinking, and a ``function_call_output`` learns its tool's name from its call.
    """
    if value is None:
        raise InvalidRequest(f"Missing required parameter: '{name}'.", param=name)
    if isinstance(value, str):
        return [ChatMessage(role="user", content=value)]
    if not isinstance(value, list):
        raise invalid_type(name, "a string or an array of input items", value)
    reader = _InputReader()
    for index, item in enumerate(value):
        param = f"{name}[{index}]"
        if not isinstance(item, dict):
            raise invalid_type(param, "an object", item)
        reader.read(Fields(item, f"{param}."), param)
    return reader.messages


class _InputReader:
    def __init__(self) -> None:
        self.messages: list[ChatMessage] = []
        self._names_by_call_id: dict[str, str] = {}
        self._thinking: list[str] = []

    def read(self, fields: Fields, param: str) -> None:
        kind = fields.string("type") or ("message" if fields.has("role") else None)
        if kind in ("message", "function_call", "function_call_output"):
            fields.choice("status", ("in_progress", "completed", "incomplete"), "completed")
        if kind == "message":
            self._message(fields, param)
        elif kind == "function_call":
            self._function_call(fields)
        elif kind == "function_call_output":
            self._function_call_output(fields)
        elif kind == "reasoning":
            self._reasoning(fields)
        elif kind == "item_reference":
            raise UnsupportedFeature(
                "an 'item_reference' must name an item by its 'id' alone.",
                param=f"{param}.type",
            )
        elif kind is None:
            raise InvalidRequest(
                f"Missing required parameter: '{param}.type'.", param=f"{param}.type"
            )
        else:
            raise UnsupportedFeature(
                f"input items of type {kind!r} are not supported.", param=f"{param}.type"
            )

    def _message(self, fields: Fields, param: str) -> None:
        role = fields.choice("role", MESSAGE_ROLES, "")
        if not role:
            raise InvalidRequest(
                f"Missing required parameter: '{param}.role'.", param=f"{param}.role"
            )
        text, images = message_content(fields, _input_part)
        if role == "assistant":
            message = self._assistant()
            message.content = "\n".join(part for part in (message.content, text) if part)
        else:
            self.messages.append(ChatMessage(role=cast(Role, role), content=text, images=images))

    def _assistant(self) -> ChatMessage:
        """The assistant turn being read: the last message if it is one and no later item
        began another turn, else a new one (with any pending reasoning)."""
        if self.messages and self.messages[-1].role == "assistant" and not self._thinking:
            return self.messages[-1]
        thinking = "".join(self._thinking) or None
        self._thinking = []
        message = ChatMessage(role="assistant", thinking=thinking)
        self.messages.append(message)
        return message

    def _function_call(self, fields: Fields) -> None:
        call_id = fields.string("call_id", required=True, non_empty=True) or ""
        name = fields.string("name", required=True, non_empty=True) or ""
        raw = fields.string("arguments", required=True) or ""
        arguments = call_arguments(raw, fields.param("arguments"))
        self._names_by_call_id[call_id] = name
        self._assistant().tool_calls.append(ToolCall(name=name, arguments=arguments, id=call_id))

    def _function_call_output(self, fields: Fields) -> None:
        call_id = fields.string("call_id", required=True, non_empty=True) or ""
        output = fields.raw("output")
        images: list[bytes] = []
        if isinstance(output, list):
            text, images = content_parts(output, fields.param("output"), _input_part)
        elif isinstance(output, str):
            text = output
        else:
            raise invalid_type(fields.param("output"), "a string or an array of parts", output)
        self.messages.append(
            ChatMessage(
                role="tool",
                content=text,
                images=images,
                tool_call_id=call_id,
                tool_name=self._names_by_call_id.get(call_id),
            )
        )

    def _reasoning(self, fields: Fields) -> None:
        # the model's own words (content) if given, else its summary
        said = []
        for name in ("content", "summary"):
            texts = []
            for index, part in enumerate(fields.array(name) or []):
                if not isinstance(part, dict) or not isinstance(part.get("text"), str):
                    expected = "an object with a 'text' string"
                    raise invalid_type(f"{fields.param(name)}[{index}]", expected, part)
                texts.append(part["text"])
            said.append("".join(texts))
        if any(said):
            self._thinking.append(said[0] or said[1])


def _input_part(kind: str, part: Fields) -> str | bytes | None:
    if kind in ("input_text", "output_text"):
        return part.string("text", required=True) or ""
    if kind == "refusal":
        return part.string("refusal", required=True) or ""
    if kind == "input_image":
        if part.has("file_id"):  # an image uploaded to /v1/files
            return attached_bytes(
                part.string("file_id", required=True) or "", part.param("file_id")
            )
        url = part.string("image_url", required=True) or ""
        return image_from_data_url(url, part.param("image_url"))
    if kind == "input_file":
        return attached_file_text(part)
    return None


# ----------------------------------------------------------------------------- tools, format
#: OpenAI's hosted tools: only OpenAI's servers run them, so a model here is not offered
#: them (Codex declares ``web_search`` in every request)
HOSTED_TOOLS = frozenset(
    {
        "web_search",
        "web_search_preview",
        "file_search",
        "code_interpreter",
        "image_generation",
        "computer_use_preview",
        "mcp",
    }
)


#: hosted tools by a dated name (``web_search_2025_08_26``)
_DATED_HOSTED_TOOLS = ("web_search_", "web_search_preview_")


def parse_function_tools(items: list[Any]) -> tuple[list[ToolSpec], list[dict[str, Any]]]:
    """``tools``: function tools as the core's specs, and as the response repeats them. A
    ``namespace`` groups functions under its name: they are offered as ``namespace.name``
    (as Ollama offers them, and as the model's calls then name them). Hosted tools are
    left out with a warning, and repeated as given."""
    tools: list[ToolSpec] = []
    echoed: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        param = f"tools[{index}]"
        if not isinstance(item, dict):
            raise invalid_type(param, "an object", item)
        fields = Fields(item, f"{param}.")
        kind = fields.string("type", required=True) or ""
        if kind in HOSTED_TOOLS or kind.startswith(_DATED_HOSTED_TOOLS):
            log.warning("left out the hosted tool %r: only OpenAI runs it", kind)
            echoed.append(item)
        elif kind == "namespace":
            echoed.append(_namespace(fields, tools))
        elif kind == "function":
            spec = function_spec(fields, tools)
            tools.append(spec)
            echoed.append(_echoed(spec, fields))
        else:
            raise UnsupportedFeature(
                f"tools of type {kind!r} are not supported; only 'function' and "
                "'namespace' tools are.",
                param=f"{param}.type",
            )
    return tools, echoed


def _namespace(fields: Fields, tools: list[ToolSpec]) -> dict[str, Any]:
    """The functions of a ``namespace`` tool, added to ``tools`` with qualified names."""
    namespace = checked_name(fields.string("name", required=True) or "", fields.param("name"))
    members = []
    for index, item in enumerate(fields.array("tools", required=True) or []):
        param = fields.param(f"tools[{index}]")
        if not isinstance(item, dict):
            raise invalid_type(param, "an object", item)
        member = Fields(item, f"{param}.")
        if member.string("type", required=True) != "function":
            raise UnsupportedFeature(
                "a namespace holds 'function' tools only.", param=member.param("type")
            )
        spec = function_spec(member, [])
        spec.name = f"{namespace}.{spec.name}"
        if any(tool.name == spec.name for tool in tools):
            raise InvalidRequest(
                f"Duplicate function name {spec.name!r} in 'tools'.", param=member.param("name")
            )
        tools.append(spec)
        members.append(_echoed(spec, member, name=spec.name.removeprefix(f"{namespace}.")))
    return {
        "type": "namespace",
        "name": namespace,
        "description": fields.string("description"),
        "tools": members,
    }


def _echoed(spec: ToolSpec, fields: Fields, name: str | None = None) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name or spec.name,
        "description": spec.description or None,
        "parameters": spec.parameters,
        "strict": fields.boolean("strict", default=True),
    }


def parse_responses_tool_choice(value: Any, tools: list[ToolSpec]) -> tuple[str, list[ToolSpec]]:
    """``tool_choice``: a mode, ``{"type": "function", "name": ...}``, or
    ``{"type": "allowed_tools", "mode": ..., "tools": [...]}``; with the tools the model may
    call."""
    if value is None or isinstance(value, str):
        return parse_tool_choice(value, tools)
    if not isinstance(value, dict):
        raise invalid_type("tool_choice", "a string or an object", value)
    fields = Fields(value, "tool_choice.")
    kind = fields.string("type", required=True)
    if kind == "allowed_tools":
        return allowed_tools(fields, tools, lambda entry: entry)  # {"type", "name"} flat
    if kind != "function":
        raise UnsupportedFeature(
            f"tool choices of type {kind!r} are not supported; name a function.",
            param="tool_choice.type",
        )
    return chosen_function(fields.string("name", required=True) or "", tools), tools


def parse_text_format(value: dict[str, Any]) -> ResponseFormat | None:
    """``text.format``: ``text`` (no constraint), ``json_object``, or ``json_schema`` with
    ``name`` and ``schema`` beside ``type``."""
    fields = Fields(value, "text.format.")
    kind = fields.choice("type", ("text", "json_object", "json_schema"), "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat(schema=None)
    return json_schema_format(fields)

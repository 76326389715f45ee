"""Reading a ``/v1/chat/completions`` body into the core's :class:`GenerationRequest`."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from power_api_openai.files import attached_text
from power_api_openai.sampling import sampling_fields
from power_api_openai.validation import Fields, invalid_type
from power_core.chat.images import placed_images
from power_core.documents import PDF_MEDIA_TYPE, pdf_text
from power_core.errors import InvalidRequest, UnsupportedFeature
from power_core.server.json_body import parse_json_object
from power_core.types import (
    ChatMessage,
    GenerationRequest,
    ResponseFormat,
    Role,
    ToolCall,
    ToolSpec,
)

ROLES = ("developer", "system", "user", "assistant", "tool")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: a data URL of any media type: the type, then the base64 data
_FILE_DATA_URL = re.compile(
    r"data:([\w.+-]+/[\w.+-]+)(?:;[^;,]*)*;base64,(.*)", re.DOTALL | re.IGNORECASE
)
_DATA_URL = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,(.*)$", re.DOTALL)


@dataclass
class ChatOptions:
    """What shapes the response rather than the generation."""

    stream: bool
    include_usage: bool
    logprobs: bool
    #: the request used the deprecated ``functions``: answer with ``function_call``
    legacy_functions: bool = False
    #: ``reasoning_effort``: ``none`` turns a reasoning model's reasoning off
    reasoning_effort: str | None = None


def parse_chat_request(body: dict[str, Any]) -> tuple[GenerationRequest, ChatOptions]:
    """The generation a chat body asks for; sampling defaults are applied later, per model."""
    fields = Fields(body)
    model = fields.model()
    messages = parse_messages(fields.array("messages", required=True) or [])
    stream = fields.boolean("stream")
    include_usage = fields.stream_options(stream)
    max_tokens = fields.integer("max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = fields.integer("max_tokens", 1)
    else:
        fields.integer("max_tokens", 1)  # still checked: a wrong type is a mistake
    want_logprobs = fields.boolean("logprobs")
    top_logprobs = fields.integer("top_logprobs", 0, 20)
    if top_logprobs is not None and not want_logprobs:
        raise InvalidRequest("'top_logprobs' requires 'logprobs' to be true.", param="top_logprobs")
    fields.string("user")
    tools = parse_tools(fields.array("tools") or [])
    tool_choice, tools = parse_tool_choice(fields.raw("tool_choice"), tools)
    request = GenerationRequest(
        model=model,
        messages=messages,
        sampling=sampling_fields(fields),
        max_tokens=max_tokens,
        stop=fields.stop(),
        n=fields.n(),
        logprobs=(top_logprobs or 0) if want_logprobs else None,
        response_format=parse_response_format(fields.object("response_format")),
        tools=tools,
        tool_choice=tool_choice,
        format_or_call=True,
        parallel_tool_calls=fields.boolean("parallel_tool_calls", default=True),
        # as Ollama's /v1: a conversation too long for the context loses its oldest turns
        # (OpenAI's contexts are rarely outgrown; a local 4096 is); "truncate": false, an
        # extension with Ollama's name, answers 400 context_length_exceeded instead
        fit_history=fields.boolean("truncate", default=True),
    )
    for unsupported in ("audio", "prediction"):
        if fields.has(unsupported):
            raise UnsupportedFeature(
                f"'{unsupported}' is not supported by this server.", param=unsupported
            )
    modalities = fields.array("modalities")
    if modalities is not None and any(m != "text" for m in modalities):
        raise UnsupportedFeature("only the 'text' modality is supported.", param="modalities")
    options = ChatOptions(
        stream=stream,
        include_usage=include_usage,
        logprobs=want_logprobs,
        reasoning_effort=fields.string("reasoning_effort"),
    )
    return request, options


# ----------------------------------------------------------------------------- messages
def parse_messages(items: list[Any]) -> list[ChatMessage]:
    """OpenAI messages as core messages; tool results learn their tool's name from the call."""
    if not items:
        raise InvalidRequest("'messages' must contain at least one message.", param="messages")
    names_by_call_id: dict[str, str] = {}
    messages: list[ChatMessage] = []
    for index, item in enumerate(items):
        param = f"messages[{index}]"
        if not isinstance(item, dict):
            raise invalid_type(param, "an object", item)
        fields = Fields(item, f"{param}.")
        role = fields.string("role", required=True)
        if role not in ROLES:
            options = ", ".join(f"'{r}'" for r in ROLES)
            raise InvalidRequest(
                f"Invalid value for '{param}.role': {role!r}. Supported values are: {options}.",
                param=f"{param}.role",
            )
        text, images = _content(fields, required=role != "assistant")
        message = ChatMessage(role=cast(Role, role), content=text, images=images)
        if role == "assistant":
            message.tool_calls = _assistant_tool_calls(fields)
            for call in message.tool_calls:
                names_by_call_id[call.id] = call.name
            reasoning = fields.string("reasoning_content")
            message.thinking = reasoning or None
            if not text and not message.tool_calls and fields.raw("content") is None:
                raise InvalidRequest(
                    f"'{param}.content' is required unless 'tool_calls' is given.",
                    param=f"{param}.content",
                )
        elif role == "tool":
            call_id = fields.string("tool_call_id", required=True)
            message.tool_call_id = call_id
            message.tool_name = names_by_call_id.get(call_id or "") or fields.string("name")
        fields.string("name")
        messages.append(message)
    return messages


#: reads one content part of a known ``type``: its text, an image's bytes, or ``None`` when
#: the type is not one this API has
PartReader = Callable[[str, Fields], "str | bytes | None"]


def _content(fields: Fields, *, required: bool) -> tuple[str, list[bytes]]:
    return message_content(fields, _chat_part, required=required)


def _chat_part(kind: str, part: Fields) -> str | bytes | None:
    if kind == "text":
        return part.string("text", required=True) or ""
    if kind == "refusal":
        return part.string("refusal", required=True) or ""
    if kind == "image_url":
        return _image(part)
    if kind == "file":
        attached = part.object("file", required=True) or {}
        return attached_file_text(Fields(attached, part.param("file.")))
    return None


def message_content(
    fields: Fields, read_part: PartReader, *, required: bool = True
) -> tuple[str, list[bytes]]:
    """A message's ``content``: a string, or parts read by ``read_part``."""
    value = fields.raw("content")
    param = fields.param("content")
    if value is None:
        if required:
            raise InvalidRequest(f"Missing required parameter: '{param}'.", param=param)
        return "", []
    if isinstance(value, str):
        return value, []
    if not isinstance(value, list):
        raise invalid_type(param, "a string or an array of content parts", value)
    return content_parts(value, param, read_part)


def content_parts(parts: list[Any], param: str, read_part: PartReader) -> tuple[str, list[bytes]]:
    """Text parts joined as paragraphs (separate paragraphs of one message, as OpenAI's
    models see them), and the bytes of inline images, each shown where its part was
    (:func:`power_core.chat.images.placed_images`)."""
    pieces: list[str | bytes] = []
    for index, part in enumerate(parts):
        part_param = f"{param}[{index}]"
        if not isinstance(part, dict):
            raise invalid_type(part_param, "an object", part)
        part_fields = Fields(part, f"{part_param}.")
        kind = part_fields.string("type", required=True) or ""
        piece = read_part(kind, part_fields)
        if piece is None:
            raise UnsupportedFeature(
                f"content parts of type {kind!r} are not supported.", param=f"{part_param}.type"
            )
        pieces.append(piece)
    return placed_images(pieces, "\n")


def _image(fields: Fields) -> bytes:
    image = fields.object("image_url", required=True) or {}
    url = Fields(image, fields.param("image_url.")).string("url", required=True) or ""
    return image_from_data_url(url, fields.param("image_url.url"))


def image_from_data_url(url: str, param: str) -> bytes:
    """The bytes of an inline ``data:image/...;base64,`` URL (``param`` names it in errors)."""
    match = _DATA_URL.match(url)
    if match is None:
        raise UnsupportedFeature(
            "images must be sent inline as 'data:image/...;base64,' URLs; this server does "
            "not download them.",
            param=param,
        )
    try:
        return base64.b64decode(match.group(1), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("the image is not valid base64.", param=param) from None


def attached_file_text(fields: Fields) -> str:
    """The text of an attached file: a PDF in ``file_data`` (a ``data:application/pdf``
    URL, or bare base64), headed by its ``filename``, or a file uploaded to ``/v1/files``
    named by ``file_id``; files by URL are refused."""
    if fields.has("file_url"):
        raise UnsupportedFeature(
            "files by 'file_url' are not supported: this server does not download; send the "
            "file in 'file_data', or upload it to /v1/files and send its 'file_id'.",
            param=fields.param("file_url"),
        )
    if fields.has("file_id"):
        file_id = fields.string("file_id", required=True) or ""
        return attached_text(file_id, fields.param("file_id"))
    param = fields.param("file_data")
    data = fields.string("file_data", required=True) or ""
    match = _FILE_DATA_URL.match(data)
    if match is not None and match.group(1).lower() != PDF_MEDIA_TYPE:
        raise UnsupportedFeature(
            f"files of type '{match.group(1)}' are not supported; PDFs are.", param=param
        )
    try:
        raw = base64.b64decode(match.group(2) if match else data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("the file is not valid base64.", param=param) from None
    return pdf_text(raw, param, fields.string("filename"))


def _assistant_tool_calls(fields: Fields) -> list[ToolCall]:
    calls: list[ToolCall] = []
    for index, item in enumerate(fields.array("tool_calls") or []):
        param = fields.param(f"tool_calls[{index}]")
        if not isinstance(item, dict):
            raise invalid_type(param, "an object", item)
        call_fields = Fields(item, f"{param}.")
        call_id = call_fields.string("id") or ""
        function = call_fields.object("function", required=True) or {}
        function_fields = Fields(function, f"{param}.function.")
        name = function_fields.string("name", required=True, non_empty=True) or ""
        raw_arguments = function_fields.string("arguments") or "{}"
        arguments = call_arguments(raw_arguments, function_fields.param("arguments"))
        calls.append(ToolCall(name=name, arguments=arguments, id=call_id))
    return calls


def call_arguments(raw: str, param: str) -> dict[str, Any]:
    """A tool call's ``arguments``: a string encoding a JSON object (empty: no arguments),
    nested no deeper than a request body may be."""
    return parse_json_object(raw.encode(), allow_empty=True, what=f"'{param}'", param=param)


# ----------------------------------------------------------------------------- tools
def parse_tools(items: list[Any]) -> list[ToolSpec]:
    """``tools``: function definitions with unique, OpenAI-style names."""
    tools: list[ToolSpec] = []
    for index, item in enumerate(items):
        param = f"tools[{index}]"
        if not isinstance(item, dict):
            raise invalid_type(param, "an object", item)
        fields = Fields(item, f"{param}.")
        kind = fields.string("type") or "function"
        if kind != "function":
            raise UnsupportedFeature(
                f"tools of type {kind!r} are not supported.", param=f"{param}.type"
            )
        function = Fields(fields.object("function", required=True) or {}, f"{param}.function.")
        tools.append(function_spec(function, tools))
    return tools


def function_spec(function: Fields, earlier: list[ToolSpec]) -> ToolSpec:
    """A function tool from its ``name``, ``description``, ``parameters`` and ``strict``
    fields; its name must be OpenAI-style and not among the ``earlier`` tools'."""
    name = function.string("name", required=True) or ""
    checked_name(name, function.param("name"))
    if any(tool.name == name for tool in earlier):
        raise InvalidRequest(
            f"Duplicate function name {name!r} in 'tools'.", param=function.param("name")
        )
    function.boolean("strict")
    parameters = function.object("parameters")
    return ToolSpec(
        name=name,
        description=function.string("description") or "",
        parameters=parameters if parameters is not None else {"type": "object", "properties": {}},
    )


def checked_name(name: str, param: str) -> str:
    """``name`` when it is 1 to 64 letters, digits, underscores or dashes (OpenAI's rule for
    function and schema names); else a 400 naming ``param``."""
    if not NAME_PATTERN.match(name):
        raise InvalidRequest(
            f"Invalid '{param}': {name!r} must be 1 to 64 letters, digits, underscores or dashes.",
            param=param,
        )
    return name


def parse_tool_choice(value: Any, tools: list[ToolSpec]) -> tuple[str, list[ToolSpec]]:
    """``tool_choice`` as the core spells it (a mode or the name of one function), and the
    tools the model may call: all of them, or those an ``allowed_tools`` choice lists."""
    if isinstance(value, dict) and value.get("type") == "allowed_tools":
        fields = Fields(value, "tool_choice.")
        listing = fields.object("allowed_tools", required=True) or {}
        return allowed_tools(Fields(listing, "tool_choice.allowed_tools."), tools, _function_of)
    return _mode_or_function(value, tools), tools


def _function_of(entry: Fields) -> Fields:
    """Where a chat tool (or a choice of one) names its function: ``function.name``."""
    return Fields(entry.object("function", required=True) or {}, entry.param("function."))


def allowed_tools(
    fields: Fields, tools: list[ToolSpec], function_of: Callable[[Fields], Fields]
) -> tuple[str, list[ToolSpec]]:
    """An ``allowed_tools`` choice: its ``mode`` (``auto`` or ``required``) over the tools
    it lists (``{"type": "function", ...}``; ``function_of`` finds the part that names
    one), each of which must be among ``tools``."""
    mode = fields.choice("mode", ("auto", "required"), "auto")
    listed = fields.array("tools", required=True) or []
    names: set[str] = set()
    for index, item in enumerate(listed):
        param = fields.param(f"tools[{index}]")
        if not isinstance(item, dict):
            raise invalid_type(param, "an object", item)
        entry = Fields(item, param + ".")
        if (entry.string("type") or "function") != "function":
            raise UnsupportedFeature("only function tools can be allowed.", param=param + ".type")
        names.add(chosen_function(function_of(entry).string("name", required=True) or "", tools))
    if not names:
        raise InvalidRequest(
            "'allowed_tools' must list at least one tool.", param=fields.param("tools")
        )
    return mode, [tool for tool in tools if tool.name in names]


def _mode_or_function(value: Any, tools: list[ToolSpec]) -> str:
    if value is None:
        return "auto"
    if isinstance(value, str):
        if value not in ("none", "auto", "required"):
            raise InvalidRequest(
                f"Invalid value for 'tool_choice': {value!r}. Supported values are: 'none', "
                "'auto', 'required' or a named function.",
                param="tool_choice",
            )
        if value == "required" and not tools:
            raise InvalidRequest(
                "'tool_choice' is 'required' but no 'tools' are given.", param="tool_choice"
            )
        return value
    if not isinstance(value, dict):
        raise invalid_type("tool_choice", "a string or an object", value)
    fields = Fields(value, "tool_choice.")
    if (fields.string("type") or "function") != "function":
        raise UnsupportedFeature(
            "only function tool choices are supported.", param="tool_choice.type"
        )
    function = Fields(fields.object("function", required=True) or {}, "tool_choice.function.")
    return chosen_function(function.string("name", required=True) or "", tools)


def chosen_function(name: str, tools: list[ToolSpec]) -> str:
    """The function ``tool_choice`` names, which must be one of the ``tools``."""
    if not any(tool.name == name for tool in tools):
        raise InvalidRequest(
            f"'tool_choice' names function {name!r}, which is not among the 'tools'.",
            param="tool_choice",
        )
    return name


# ----------------------------------------------------------------------------- output format
def parse_response_format(value: dict[str, Any] | None) -> ResponseFormat | None:
    """``text`` is no constraint; ``json_object`` any JSON object; ``json_schema`` its schema."""
    if value is None:
        return None
    fields = Fields(value, "response_format.")
    kind = fields.choice("type", ("text", "json_object", "json_schema"), "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat(schema=None)
    spec = Fields(fields.object("json_schema", required=True) or {}, "response_format.json_schema.")
    return json_schema_format(spec)


def json_schema_format(spec: Fields) -> ResponseFormat:
    """A ``json_schema`` format from its ``name``, ``schema``, ``strict`` and
    ``description`` fields (chat nests them under ``json_schema``, Responses does not)."""
    checked_name(spec.string("name", required=True) or "", spec.param("name"))
    spec.boolean("strict")
    spec.string("description")
    schema = spec.object("schema")
    return ResponseFormat(schema=schema if schema is not None else {"type": "object"})

"""Reading a ``/v1/messages`` body into the core's :class:`GenerationRequest`.

Content blocks become the core's messages as Ollama converts them: ``image`` blocks
(base64) become the message's images, an assistant's ``tool_use`` blocks its tool calls and
its ``thinking`` block its reasoning, and each ``tool_result`` a ``tool`` message ahead of
the user's own text. ``text`` blocks (and ``system`` blocks) are joined as paragraphs, where
Ollama runs them together. A ``document`` or ``search_result`` of plain text is read as
text; blocks of another provider's server tools in a replayed history (``server_tool_use``,
``web_search_tool_result``, a PDF ``document``) are left out with a warning rather than
refused, so that one of them does not make every later turn of a conversation fail, as
Ollama leaves them. Sampling fields the client leaves out come from the model's Modelfile
parameters, not from Anthropic's defaults.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from power_api_anthropic.fields import Fields, invalid
from power_core.chat.images import placed_images
from power_core.documents import PDF_MEDIA_TYPE, pdf_text
from power_core.errors import UnsupportedFeature
from power_core.types import (
    ChatMessage,
    GenerationRequest,
    ResponseFormat,
    Role,
    ToolCall,
    ToolSpec,
)

log = logging.getLogger("power_api_anthropic")

#: the roles of messages, as the core spells them
ROLES: dict[str, Role] = {"user": "user", "assistant": "assistant", "system": "system"}
#: Anthropic's rule for tool names
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
#: request fields of features this server has not (an MCP connector, code execution); an
#: empty one asks for nothing
UNSUPPORTED = ("mcp_servers", "container")
#: blocks that only Anthropic's own servers make or read, left out of a replayed history
SKIPPED_BLOCKS = ("server_tool_use", "web_search_tool_result", "redacted_thinking")


@dataclass
class MessagesOptions:
    """What shapes the answer rather than the generation."""

    stream: bool
    #: the client's ``stop_sequences``: a stop on one of them is ``stop_sequence``
    stop_sequences: list[str] = field(default_factory=list)
    #: the client's ``max_tokens``: an answer cut shorter filled the context
    max_tokens: int | None = None


def parse_messages_request(
    body: dict[str, Any], *, count_only: bool = False
) -> tuple[GenerationRequest, MessagesOptions]:
    """The generation a ``/v1/messages`` body asks for (``count_only``: the body of
    ``/v1/messages/count_tokens``, which has no ``max_tokens``)."""
    fields = Fields(body)
    model = fields.string("model", required=True) or ""
    if not model.strip():
        raise invalid("model", "String should have at least 1 character")
    max_tokens = None if count_only else fields.integer("max_tokens", required=True, minimum=1)
    messages = _system(fields) + parse_messages(fields.array("messages", required=True) or [])
    tools = parse_tools(fields.array("tools") or [])
    choice, parallel = parse_tool_choice(fields.object("tool_choice"), tools)
    stop_sequences = fields.strings("stop_sequences")
    for unsupported in UNSUPPORTED:
        if fields.raw(unsupported):
            raise UnsupportedFeature(
                f"{unsupported}: not supported by this server", param=unsupported
            )
    metadata = fields.object("metadata")
    if metadata is not None:
        metadata.string("user_id")
    output = fields.object("output_config")
    request = GenerationRequest(
        model=model,
        messages=messages,
        sampling=_sampling(fields),
        max_tokens=max_tokens,
        stop=stop_sequences,
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=parallel,
        think=_think(fields.object("thinking")),
        think_level=_effort(output),
        response_format=_format(output),
        # as Ollama: a conversation too long for the context loses its oldest turns (not
        # when counting: the count is of the whole conversation)
        fit_history=not count_only,
    )
    options = MessagesOptions(
        stream=fields.boolean("stream"), stop_sequences=stop_sequences, max_tokens=max_tokens
    )
    return request, options


def _sampling(fields: Fields) -> dict[str, Any]:
    sampling: dict[str, Any] = {}
    temperature = fields.number("temperature", 0.0, 1.0)
    if temperature is not None:
        sampling["temperature"] = temperature
    top_p = fields.number("top_p", 0.0, 1.0)
    if top_p is not None:
        sampling["top_p"] = top_p
    top_k = fields.integer("top_k", minimum=0)
    if top_k is not None:
        sampling["top_k"] = top_k
    return sampling


def _think(thinking: Fields | None) -> bool | None:
    """``thinking``: ``enabled`` separates a thinking model's reasoning into ``thinking``
    blocks, ``disabled`` turns it off, ``adaptive`` (or none) leaves it to the model."""
    if thinking is None:
        return None
    kind = thinking.string("type", required=True)
    if kind == "enabled":
        # the budget is not enforced (nor is it by Ollama): a local model thinks until done
        thinking.integer("budget_tokens", minimum=1)
        return True
    if kind == "disabled":
        return False
    if kind == "adaptive":
        return None
    raise invalid("thinking.type", "Input should be 'enabled', 'disabled' or 'adaptive'")


def _effort(output: Fields | None) -> str | None:
    """``output_config.effort`` as the think level Go templates read (``xhigh`` and ``max``
    are ``high``); it does not turn thinking on for a model that does not think."""
    effort = output.string("effort") if output is not None else None
    if effort is None:
        return None
    if effort not in ("low", "medium", "high", "xhigh", "max"):
        raise invalid(
            "output_config.effort", "Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"
        )
    return "high" if effort in ("xhigh", "max") else effort


def _format(output: Fields | None) -> ResponseFormat | None:
    """``output_config.format``: a JSON schema the output is constrained to while sampled."""
    spec = output.object("format") if output is not None else None
    if spec is None:
        return None
    if spec.string("type", required=True) != "json_schema":
        raise invalid("output_config.format.type", "Input should be 'json_schema'")
    schema = spec.object("schema", required=True)
    assert schema is not None
    return ResponseFormat(schema=schema.values)


def _system(fields: Fields) -> list[ChatMessage]:
    """``system``: a string, or text blocks joined as paragraphs."""
    value = fields.raw("system")
    if value is None:
        return []
    if isinstance(value, str):
        text = value
    elif isinstance(value, list):
        texts = []
        for index, block in enumerate(value):
            part = Fields(block, f"system.{index}.")
            if part.string("type", required=True) != "text":
                raise invalid(f"system.{index}.type", "Input should be 'text'")
            texts.append(part.string("text", required=True) or "")
        text = "\n\n".join(texts)
    else:
        raise invalid("system", "Input should be a valid string or a list of text blocks")
    return [ChatMessage(role="system", content=text)] if text else []


# ----------------------------------------------------------------------------- messages
def parse_messages(items: list[Any]) -> list[ChatMessage]:
    """Anthropic messages as core messages; a tool result learns its tool's name from the
    ``tool_use`` block it answers. A ``system`` message among them (Claude Code sends its
    environment so) is a system turn where it stands, as Ollama passes it on."""
    if not items:
        raise invalid("messages", "List should have at least 1 item")
    names_by_id: dict[str, str] = {}
    messages: list[ChatMessage] = []
    for index, item in enumerate(items):
        fields = Fields(item, f"messages.{index}.")
        role = fields.string("role", required=True)
        if role not in ROLES:
            raise invalid(
                f"messages.{index}.role", "Input should be 'user', 'assistant' or 'system'"
            )
        content = fields.raw("content", required=True)
        if isinstance(content, str):
            messages.append(ChatMessage(role=ROLES[role], content=content))
            continue
        if not isinstance(content, list):
            raise invalid(f"messages.{index}.content", "Input should be a valid string or list")
        blocks = _Blocks(role, f"messages.{index}.content", names_by_id)
        for number, block in enumerate(content):
            blocks.read(Fields(block, f"messages.{index}.content.{number}."))
        messages.extend(blocks.messages())
    return messages


class _Blocks:
    """The content blocks of one message, gathered into the core's messages."""

    def __init__(self, role: str, path: str, names_by_id: dict[str, str]) -> None:
        self.role = role
        self.path = path
        self.names_by_id = names_by_id
        #: texts and images in the order the blocks had them
        self.parts: list[str | bytes] = []
        self.calls: list[ToolCall] = []
        self.thinking: str | None = None
        self.results: list[ChatMessage] = []

    def read(self, block: Fields) -> None:
        kind = block.string("type", required=True)
        if kind == "text":
            self.parts.append(block.string("text", required=True) or "")
        elif kind == "image":
            self.parts.append(image_bytes(block))
        elif kind == "tool_use" and self.role == "assistant":
            call_id = block.string("id", required=True) or ""
            name = block.string("name", required=True) or ""
            arguments = block.object("input", required=True)
            assert arguments is not None
            self.names_by_id[call_id] = name
            self.calls.append(ToolCall(name=name, arguments=arguments.values, id=call_id))
        elif kind == "tool_result" and self.role == "user":
            self.results.append(self._tool_result(block))
        elif kind == "thinking" and self.role == "assistant":
            self.thinking = block.string("thinking", required=True)
            block.string("signature")
        elif kind in ("document", "search_result"):
            text = _document_text(block)
            if text is not None:
                self.parts.append(text)
            else:
                log.warning("left out a %s block that is not plain text (%s)", kind, block.prefix)
        elif kind in SKIPPED_BLOCKS:
            log.warning("left out a %s block (%s)", kind, block.prefix)
        else:
            raise UnsupportedFeature(
                f"{block.path('type')}: content blocks of type {kind!r} are not supported "
                f"in {self.role} messages",
                param=block.path("type"),
            )

    def _tool_result(self, block: Fields) -> ChatMessage:
        call_id = block.string("tool_use_id", required=True) or ""
        failed = block.boolean("is_error")
        content = block.raw("content")
        parts: list[str | bytes] = []
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            for index, part in enumerate(content):
                inner = Fields(part, f"{block.path('content')}.{index}.")
                kind = inner.string("type", required=True)
                if kind == "text":
                    parts.append(inner.string("text", required=True) or "")
                elif kind == "image":
                    parts.append(image_bytes(inner))
                elif kind in ("document", "search_result"):
                    text = _document_text(inner)
                    if text is None:
                        log.warning("left out a %s block of a tool result (%s)", kind, inner.prefix)
                    else:
                        parts.append(text)
                else:  # a tool_reference: nothing a local model could read
                    log.warning("left out a %s block of a tool result (%s)", kind, inner.prefix)
        elif content is not None:
            raise invalid(block.path("content"), "Input should be a valid string or list")
        text, images = placed_images(parts, "\n")
        if failed:
            text = f"Error: {text}" if text else "Error"
        return ChatMessage(
            role="tool",
            content=text,
            images=images,
            tool_call_id=call_id,
            tool_name=self.names_by_id.get(call_id),
        )

    def messages(self) -> list[ChatMessage]:
        """Tool results first (they answer the turn before), then the message itself."""
        text, images = placed_images(self.parts, "\n\n")
        own: list[ChatMessage] = []
        if text or images or self.calls or self.thinking or not self.results:
            own.append(
                ChatMessage(
                    role=ROLES[self.role],
                    content=text,
                    images=images,
                    tool_calls=self.calls,
                    thinking=self.thinking or None,
                )
            )
        return [*self.results, *own]


def _document_text(block: Fields) -> str | None:
    """The text of a ``document`` (a ``text`` source, or a base64 PDF's pages), or of a
    ``search_result``'s text blocks, with its title; ``None`` for anything else (an image,
    a document's content blocks)."""
    title = block.string("title")
    parts: list[str] = [title] if title else []
    source = block.raw("source")
    if block.string("type") == "document":
        if not isinstance(source, dict):
            return None
        if source.get("type") == "base64" and source.get("media_type") == PDF_MEDIA_TYPE:
            parts.append(pdf_text(_base64(block, "source", "data"), block.path("source")))
        elif source.get("type") in ("url", "file"):
            raise UnsupportedFeature(
                f"{block.path('source.type')}: documents must be sent with their data "
                "(base64 or text); this server does not download them",
                param=block.path("source.type"),
            )
        elif source.get("type") == "text":
            parts.append(str(source.get("data") or ""))
        else:
            return None
    else:
        for item in block.array("content") or []:
            if isinstance(item, dict) and item.get("type") == "text":
                parts.append(str(item.get("text") or ""))
    return "\n\n".join(parts)


def _base64(block: Fields, name: str, field: str) -> bytes:
    """The bytes of ``block[name][field]``, base64; a 400 naming it when it is not."""
    inner = block.object(name, required=True)
    assert inner is not None
    try:
        return base64.b64decode(inner.string(field, required=True) or "", validate=True)
    except (binascii.Error, ValueError):
        raise invalid(inner.path(field), "the data is not valid base64") from None


def image_bytes(block: Fields) -> bytes:
    """The bytes of an ``image`` block's base64 ``source``."""
    source = block.object("source", required=True)
    assert source is not None
    kind = source.string("type", required=True)
    if kind != "base64":
        raise UnsupportedFeature(
            f"{source.path('type')}: images must be sent as base64; this server does not "
            "download them",
            param=source.path("type"),
        )
    media_type = source.string("media_type", required=True)
    if media_type not in IMAGE_TYPES:
        allowed = ", ".join(f"'{t}'" for t in IMAGE_TYPES)
        raise invalid(source.path("media_type"), f"Input should be {allowed}")
    try:
        return base64.b64decode(source.string("data", required=True) or "", validate=True)
    except (binascii.Error, ValueError):
        raise invalid(source.path("data"), "the image is not valid base64") from None


# ----------------------------------------------------------------------------- tools
def parse_tools(items: list[Any]) -> list[ToolSpec]:
    """``tools``: client tools with unique names; server tools (web search, code execution)
    are left out with a warning, as only Anthropic's servers run them."""
    tools: list[ToolSpec] = []
    for index, item in enumerate(items):
        fields = Fields(item, f"tools.{index}.")
        kind = fields.string("type")
        if kind not in (None, "custom"):
            # a server tool (web search, code execution): only Anthropic runs those
            log.warning("left out the server tool %r: only Anthropic runs it", kind)
            continue
        name = fields.string("name", required=True) or ""
        if not TOOL_NAME.match(name):
            raise invalid(f"tools.{index}.name", "String should match '^[a-zA-Z0-9_-]{1,128}$'")
        if any(tool.name == name for tool in tools):
            raise invalid(f"tools.{index}.name", f"tool names must be unique ({name!r} repeats)")
        schema = fields.object("input_schema", required=True)
        assert schema is not None
        tools.append(
            ToolSpec(
                name=name,
                description=fields.string("description") or "",
                parameters=schema.values,
            )
        )
    return tools


def parse_tool_choice(choice: Fields | None, tools: list[ToolSpec]) -> tuple[str, bool]:
    """``tool_choice`` as the core spells it, and whether calls may come in parallel:
    ``auto``, ``any`` (some tool must be called), ``tool`` (this one) or ``none``."""
    if choice is None:
        return "auto", True
    kind = choice.string("type", required=True)
    parallel = not choice.boolean("disable_parallel_tool_use")
    if kind in ("auto", "none"):
        return kind, parallel
    if not tools:
        raise invalid("tool_choice", f"tool_choice {kind!r} needs 'tools'")
    if kind == "any":
        return "required", parallel
    if kind == "tool":
        name = choice.string("name", required=True) or ""
        if not any(tool.name == name for tool in tools):
            raise invalid("tool_choice.name", f"{name!r} is not among the tools")
        return name, parallel
    raise invalid("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'")

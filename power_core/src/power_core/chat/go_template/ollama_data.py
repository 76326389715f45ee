"""What an Ollama template sees: the conversation and tools as Ollama hands them to
``text/template`` (``template.Values`` turned into its template types), so that fields,
JSON and printing match Ollama's.

* ``.Messages``: each ``.Role``, ``.Content``, ``.Thinking``, ``.Images``, ``.ToolCalls``
  (``.ID``, ``.Function.Index``/``.Name``/``.Arguments``), ``.ToolName``, ``.ToolCallID``;
  consecutive messages of one role (but ``tool``) merged as Ollama's ``collate`` merges them.
* ``.Tools``: each ``.Type`` and ``.Function.Name``/``.Description``/``.Parameters``
  (``.Type``, ``.Required``, ``.Properties`` of ``.Type``, ``.Description``, ``.Enum``...);
  a tool, the list of them, tool-call arguments and properties print as their JSON.
* numbers inside arguments and schemas are float64, as Go decodes JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from power_core.chat.go_template.values import GoList, GoMap, GoStruct, go_json
from power_core.types import ChatMessage, ToolSpec


@dataclass
class Turn:
    """One message after collation (Ollama's ``api.Message``, as ``collate`` leaves it)."""

    message: ChatMessage
    role: str
    content: str


def collate(messages: list[ChatMessage]) -> tuple[str, list[Turn]]:
    """Ollama's ``collate``: every system message's text (joined by a blank line), and the
    messages with consecutive ones of one role (but ``tool``) merged into the first of
    them, their texts joined by a blank line (the later ones' other fields dropped)."""
    system: list[str] = []
    turns: list[Turn] = []
    for message in messages:
        role = _role(message)
        if role == "system":
            system.append(message.content)
        if turns and turns[-1].role == role and role != "tool":
            turns[-1].content += "\n\n" + message.content
        else:
            turns.append(Turn(message, role, message.content))
    return "\n\n".join(system), turns


def _role(message: ChatMessage) -> str:
    return "system" if message.role == "developer" else message.role


def _json_text(value: Any) -> str:
    return "{}" if getattr(value, "nil", False) else go_json(value)


def go_json_value(value: Any) -> Any:
    """A JSON value as Go decodes it into ``any``: numbers are float64."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {str(k): go_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [go_json_value(v) for v in value]
    return value


def message_value(turn: Turn) -> GoStruct:
    """A message as Ollama's ``templateMessage``."""
    message = turn.message
    calls = [
        GoStruct(
            "template.templateToolCall",
            {
                "ID": call.id,
                "Function": GoStruct(
                    "template.templateToolCallFunction",
                    {
                        "Index": index,
                        "Name": call.name,
                        "Arguments": GoMap(go_json_value(call.arguments), string_method=_json_text),
                    },
                ),
            },
        )
        for index, call in enumerate(message.tool_calls)
    ]
    return GoStruct(
        "*template.templateMessage",
        {
            "Role": turn.role,
            "Content": turn.content,
            "Thinking": message.thinking or "",
            "Images": GoList(message.images, nil=True),
            "ToolCalls": GoList(calls, nil=True),
            "ToolName": message.tool_name or "",
            "ToolCallID": message.tool_call_id or "",
        },
    )


def _property_type(types: GoList) -> str:
    if not types:
        return ""
    return types[0] if len(types) == 1 else "[" + " ".join(types) + "]"


def _property_type_json(types: GoList) -> Any:
    return types[0] if len(types) == 1 else list(types)


_PROPERTY_JSON = (
    ("AnyOf", "anyOf", True),
    ("Type", "type", True),
    ("Items", "items", True),
    ("Description", "description", True),
    ("Enum", "enum", True),
    ("Properties", "properties", True),
    ("Required", "required", True),
)


def property_value(schema: Any) -> GoStruct:
    """A JSON Schema property as Ollama's ``api.ToolProperty`` (other keywords dropped, as
    Ollama drops them when it reads a request)."""
    schema = schema if isinstance(schema, dict) else {}
    kind = schema.get("type")
    types = [kind] if isinstance(kind, str) else [t for t in kind or [] if isinstance(t, str)]
    nested = schema.get("properties")
    properties = None
    if isinstance(nested, dict):
        ordered = GoMap({k: property_value(v) for k, v in nested.items()}, ordered=True)
        # a pointer to Ollama's ordered map: present even when empty, JSON in its order
        properties = GoStruct("*api.ToolPropertiesMap", {}, json_method=_constant(ordered))
    any_of = schema.get("anyOf")
    return GoStruct(
        "api.ToolProperty",
        {
            "AnyOf": GoList(
                [property_value(p) for p in any_of] if isinstance(any_of, list) else [], nil=True
            ),
            "Type": GoList(types, string_method=_property_type, json_method=_property_type_json),
            "Items": go_json_value(schema.get("items")),
            "Description": _text(schema.get("description")),
            "Enum": GoList(go_json_value(schema.get("enum") or []), nil=True),
            "Properties": properties,
            "Required": GoList(_strings(schema.get("required")), nil=True),
        },
        json_fields=_PROPERTY_JSON,
    )


def _constant(value: Any) -> Any:
    return lambda _self: value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _empty_property() -> GoStruct:
    return property_value({})


def tool_value(tool: ToolSpec) -> GoStruct:
    """A tool as Ollama's ``templateTool``; it prints as its JSON."""
    parameters = tool.parameters if isinstance(tool.parameters, dict) else {}
    schema_properties = parameters.get("properties")
    properties = GoMap(
        {k: property_value(v) for k, v in schema_properties.items()}
        if isinstance(schema_properties, dict)
        else {},
        nil=not isinstance(schema_properties, dict),
        zero=_empty_property,
        string_method=_json_text,
    )
    function = GoStruct(
        "template.templateToolFunction",
        {
            "Name": tool.name,
            "Description": tool.description or "",
            "Parameters": GoStruct(
                "template.templateToolFunctionParameters",
                {
                    "Type": _text(parameters.get("type")),
                    "Defs": go_json_value(parameters.get("$defs")),
                    "Items": go_json_value(parameters.get("items")),
                    "Required": GoList(_strings(parameters.get("required")), nil=True),
                    "Properties": properties,
                },
                json_fields=(
                    ("Type", "type", False),
                    ("Defs", "$defs", True),
                    ("Items", "items", True),
                    ("Required", "required", True),
                    ("Properties", "properties", False),
                ),
            ),
        },
        json_fields=(
            ("Name", "name", False),
            ("Description", "description", False),
            ("Parameters", "parameters", False),
        ),
    )
    return GoStruct(
        "template.templateTool",
        {"Type": "function", "Items": None, "Function": function},
        json_fields=(
            ("Type", "type", False),
            ("Items", "items", True),
            ("Function", "function", False),
        ),
        string_method=go_json,
    )


def tools_value(tools: list[ToolSpec] | None) -> GoList:
    """The request's tools as Ollama's ``templateTools`` (nil when there are none)."""
    return GoList(
        [tool_value(t) for t in tools or []], nil=True, string_method=lambda v: go_json(v)
    )


@dataclass(frozen=True)
class ThinkValues:
    """``.Think``, ``.ThinkLevel`` and ``.IsThinkSet`` from a request's ``think`` and the
    level it named, if any."""

    think: bool | None = None
    level: str | None = None

    def values(self) -> dict[str, Any]:
        return {
            "Think": bool(self.think),
            # the level asked for; Ollama's level for a plain true is "medium"
            "ThinkLevel": (self.level or "medium") if self.think else "",
            "IsThinkSet": self.think is not None,
        }

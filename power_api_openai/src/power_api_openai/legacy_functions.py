"""OpenAI's deprecated function calling, as older clients still send it (LangChain's
``bind_functions``, instructor's FUNCTIONS mode): ``functions`` and ``function_call`` in the
request, ``role: "function"`` results and assistant ``function_call`` messages in the
conversation. OpenAI still takes them; here they are read as the ``tools`` that replaced
them, and the answer speaks the old way back: ``message.function_call`` and
``finish_reason: "function_call"``, one call at most.
"""

from __future__ import annotations

from typing import Any

from power_api_openai.validation import invalid_type
from power_core.errors import InvalidRequest

_LEGACY_ID = "call_function_{}"


def uses_functions(body: dict[str, Any]) -> bool:
    """Whether the request asks for functions the deprecated way (answered the same way)."""
    return body.get("functions") is not None


def with_tools(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with its deprecated fields rewritten as ``tools``, ``tool_choice`` and tool
    messages; a body without them comes back as it is."""
    messages = body.get("messages")
    legacy_messages = isinstance(messages, list) and any(
        isinstance(m, dict) and (m.get("role") == "function" or "function_call" in m)
        for m in messages
    )
    if not (uses_functions(body) or "function_call" in body or legacy_messages):
        return body
    modern = dict(body)
    functions = modern.pop("functions", None)
    if functions is not None:
        if modern.get("tools") is not None:
            raise InvalidRequest(
                "give either 'functions' or 'tools', not both; 'functions' is deprecated.",
                param="functions",
            )
        if not isinstance(functions, list):
            raise invalid_type("functions", "an array", functions)
        modern["tools"] = [{"type": "function", "function": f} for f in functions]
        modern["parallel_tool_calls"] = False  # the old way has one call per answer
    choice = modern.pop("function_call", None)
    if choice is not None:
        modern["tool_choice"] = _tool_choice(choice)
    if legacy_messages and isinstance(messages, list):
        modern["messages"] = _tool_messages(messages)
    return modern


def _tool_choice(choice: Any) -> Any:
    if choice in ("none", "auto"):
        return choice
    if isinstance(choice, dict) and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest(
        "Invalid value for 'function_call': it must be 'none', 'auto' or {\"name\": ...}.",
        param="function_call",
    )


def _tool_messages(messages: list[Any]) -> list[Any]:
    """Assistant ``function_call`` messages carry a tool call with an id, and ``function``
    results answer the latest call (of their name, if they give one)."""
    modern: list[Any] = []
    calls: list[tuple[str, str]] = []  # (id, name), oldest first
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            modern.append(message)
            continue
        message = dict(message)
        call = message.pop("function_call", None)
        if message.get("role") == "assistant" and isinstance(call, dict):
            call_id = _LEGACY_ID.format(index)
            calls.append((call_id, str(call.get("name", ""))))
            message["tool_calls"] = [{"id": call_id, "type": "function", "function": call}]
        elif message.get("role") == "function":
            name = message.get("name")
            answered = [i for i, n in calls if name is None or n == name] or [i for i, _ in calls]
            message["role"] = "tool"
            message["tool_call_id"] = answered[-1] if answered else _LEGACY_ID.format(index)
        modern.append(message)
    return modern


def function_call_json(tool_call: dict[str, Any]) -> dict[str, Any]:
    """The ``function_call`` of an answer, from the tool call it would have been."""
    function = tool_call["function"]
    return {"name": function["name"], "arguments": function["arguments"]}

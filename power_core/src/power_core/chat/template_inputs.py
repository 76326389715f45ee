"""What a chat template is given, whichever language it is written in: tools as the
OpenAI-style dictionaries templates iterate over, and the size of the input, which a
render's output may legitimately grow with. Imports no template engine."""

from __future__ import annotations

import json
from typing import Any

from power_core.types import ChatMessage, ToolSpec


def tool_dicts(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    """Turn tool specs into OpenAI-style ``{"type": "function", "function": {...}}`` entries."""
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
            },
        }
        for tool in tools
    ]


def input_size(messages: list[ChatMessage], tools: list[dict[str, Any]] | None) -> int:
    """The characters of a conversation and its tools, which a render's output may
    legitimately grow with."""
    size = len(json.dumps(tools)) if tools else 0
    for message in messages:
        size += len(message.content) + len(message.thinking or "")
        for call in message.tool_calls:
            size += len(call.name) + len(json.dumps(call.arguments))
    return size

"""Chat templates that show the test model tools (SmolLM2's own shows it none)."""

from __future__ import annotations

import json
from typing import Any

#: the test model's ChatML with tools laid out as Qwen 2.5 lays them out (SmolLM2's own
#: template shows the model no tools, so the server refuses tools it may choose among)
TOOLS_TEMPLATE = """\
{%- if tools %}<|im_start|>system
{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}
{% endif %}# Tools
<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools>
For a function call, return a JSON object with its name and arguments within \
<tool_call></tool_call> tags.<|im_end|>
{% elif messages[0]['role'] == 'system' %}<|im_start|>system
{{ messages[0]['content'] }}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'user' %}<|im_start|>user
{{ message.content }}<|im_end|>
{% elif message.role == 'assistant' %}<|im_start|>assistant
{% if message.content %}{{ message.content }}{% endif %}
{%- for call in message.tool_calls or [] %}<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}
</tool_call>{% endfor %}<|im_end|>
{% elif message.role == 'tool' %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

#: a weather tool that also requires the unit
WEATHER_WITH_UNIT = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
}
_SHOWN_CITIES = ("Oslo", "Lima", "Cairo")


def weather_call_shots(ask: str, *, ollama: bool = False) -> list[dict[str, Any]]:
    """A conversation in which the model has called ``get_weather`` three times, with a
    city alone, then ``ask``: under :data:`TOOLS_TEMPLATE` the test model calls it again
    (greedy) as it did before, in a ``<tool_call>`` block. In the wire shape of OpenAI's
    chat messages, or of Ollama's (``ollama``: arguments as an object, no ids)."""
    messages: list[dict[str, Any]] = []
    for index, city in enumerate(_SHOWN_CITIES):
        arguments = {"city": city}
        call: dict[str, Any] = (
            {"function": {"name": "get_weather", "arguments": arguments}}
            if ollama
            else {
                "id": f"call_{index}",
                "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps(arguments)},
            }
        )
        messages.append({"role": "user", "content": f"What is the weather in {city}?"})
        messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
    messages.append({"role": "user", "content": ask})
    return messages

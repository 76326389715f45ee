"""Fixtures for the OpenAI Agents SDK tests: the ``openai-agents`` package, unchanged,
with its model client pointed at A3S Power and its tracing (which would send traces to
OpenAI) turned off, as a user of a local server turns it off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from agents import set_default_openai_client, set_tracing_disabled
from openai import AsyncOpenAI

from api_openai.wire_reading import MODEL
from conftest import PowerServer


@pytest.fixture(autouse=True)
def agents_client(power_server: PowerServer) -> Iterator[AsyncOpenAI]:
    """The async ``openai`` client the agents of one test use. One per test: its pooled
    connections belong to the event loop that opened them, and each test runs one loop."""
    client = AsyncOpenAI(base_url=power_server.url + "/v1", api_key="local", max_retries=0)
    set_default_openai_client(client, use_for_tracing=False)
    set_tracing_disabled(True)
    yield client


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


@pytest.fixture(scope="module")
def tools_model(power_server: PowerServer) -> Iterator[str]:
    """The test model under a template that shows it tools, created through the Ollama
    API and deleted after the module."""
    name = "agents-tools:1"
    created = requests.post(
        power_server.url + "/api/create",
        json={"model": name, "from": MODEL, "template": TOOLS_TEMPLATE, "stream": False},
        timeout=120,
    )
    assert created.status_code == 200, created.text
    yield name
    requests.delete(power_server.url + "/api/delete", json={"model": name}, timeout=60)

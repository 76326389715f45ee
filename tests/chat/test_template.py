"""ChatTemplate renders real and fallback templates the way Hugging Face templates expect."""

from __future__ import annotations

from pathlib import Path

import pytest

from power_core.chat.sandbox import compile_template
from power_core.chat.template import (
    CHATML_TEMPLATE,
    ChatTemplate,
    TemplateError,
    message_dicts,
    render_prompt,
)
from power_core.errors import InvalidRequest
from power_core.types import ChatMessage, ToolCall, ToolSpec

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather in a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


@pytest.fixture(scope="module")
def smollm2_template(model_path: Path) -> str:
    """The chat template stored in the real SmolLM2 GGUF's metadata."""
    from gguf import GGUFReader

    field = GGUFReader(str(model_path)).fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


@pytest.mark.model
def test_smollm2_template_from_gguf_renders_exact_chatml(smollm2_template: str) -> None:
    template = ChatTemplate(smollm2_template)
    assert not template.supports_tools

    assert template.render([ChatMessage("user", "Hi")]) == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    conversation = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Hello!"),
        ChatMessage("user", "2+2?"),
    ]
    assert template.render(conversation) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert template.render(conversation, add_generation_prompt=False).endswith(
        "<|im_start|>user\n2+2?<|im_end|>\n"
    )


@pytest.mark.model
def test_a_final_assistant_message_is_left_open_to_continue(smollm2_template: str) -> None:
    template = ChatTemplate(smollm2_template)
    started = [ChatMessage("user", "Count to 5."), ChatMessage("assistant", "1, 2,")]
    assert render_prompt(template, started, None).endswith(
        "<|im_start|>user\nCount to 5.<|im_end|>\n<|im_start|>assistant\n1, 2,"
    )
    # an empty one, or one with tool calls, is closed and a new turn opens as before
    for last in (
        ChatMessage("assistant", ""),
        ChatMessage("assistant", "", tool_calls=[ToolCall("get_time", {})]),
    ):
        conversation = [started[0], last]
        assert render_prompt(template, conversation, None) == template.render(conversation)
    # the text is placed where the template shows it, whatever it holds: a newline or a
    # "|" (found in <|im_end|> by a search for the text) and spaces a template would trim
    for started_text in ("\n", "|", "Answer: "):
        conversation = [started[0], ChatMessage("assistant", started_text)]
        assert render_prompt(template, conversation, None).endswith(
            "<|im_start|>assistant\n" + started_text
        )
    trimming = ChatTemplate(
        "{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}</s>{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    assert render_prompt(trimming, started, None).endswith("<assistant>1, 2,")
    # a template that does not show the text as it is leaves nothing to cut at: closed
    counting = ChatTemplate(
        "{% for m in messages %}<{{ m.role }}>{{ m.content | length }}</s>{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    assert render_prompt(counting, started, None).endswith("<assistant>5</s><assistant>")


def test_developer_role_is_rendered_as_system(smollm2_template: str) -> None:
    template = ChatTemplate(smollm2_template)
    rendered = template.render([ChatMessage("developer", "Be brief."), ChatMessage("user", "Hi")])
    assert rendered.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")
    assert "SmolLM" not in rendered


def test_chatml_fallback_plain_conversation() -> None:
    template = ChatTemplate(CHATML_TEMPLATE)
    assert template.render([ChatMessage("user", "Hi")]) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert template.render(
        [ChatMessage("developer", "Rules."), ChatMessage("user", "Hi")],
        add_generation_prompt=False,
    ) == ("<|im_start|>system\nRules.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n")


def test_chatml_fallback_with_tools_tool_calls_and_results() -> None:
    template = ChatTemplate(CHATML_TEMPLATE)
    assert template.supports_tools
    conversation = [
        ChatMessage("system", "You help."),
        ChatMessage("user", "Weather in Paris and Oslo?"),
        ChatMessage(
            "assistant",
            "",
            tool_calls=[
                ToolCall("get_weather", {"city": "Paris"}, id="call_1"),
                ToolCall("get_weather", {"city": "Oslo"}, id="call_2"),
            ],
        ),
        ChatMessage("tool", "18 °C", tool_call_id="call_1", tool_name="get_weather"),
        ChatMessage("tool", "-3 °C", tool_call_id="call_2", tool_name="get_weather"),
    ]
    assert template.render(conversation, tools=[WEATHER]) == (
        "<|im_start|>system\nYou help.\n\n# Tools\n\n"
        "You may call one or more of the functions below. Their signatures, one JSON object "
        "per line, are inside <tools></tools>:\n<tools>\n"
        '{"type": "function", "function": {"name": "get_weather", "description": '
        '"Current weather in a city", "parameters": {"type": "object", "properties": '
        '{"city": {"type": "string"}}, "required": ["city"]}}}\n'
        "</tools>\n\nTo call a function, answer with one JSON object per call, each inside "
        "<tool_call></tool_call> tags:\n<tool_call>\n"
        '{"name": <function name>, "arguments": <arguments as a JSON object>}\n'
        "</tool_call><|im_end|>\n"
        "<|im_start|>user\nWeather in Paris and Oslo?<|im_end|>\n"
        "<|im_start|>assistant\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
        "<|im_end|>\n"
        "<|im_start|>tool\n<tool_response>\n18 °C\n</tool_response><|im_end|>\n"
        "<|im_start|>tool\n<tool_response>\n-3 °C\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_chatml_tools_without_system_message_and_call_after_text() -> None:
    template = ChatTemplate(CHATML_TEMPLATE)
    rendered = template.render(
        [
            ChatMessage("user", "Hi"),
            ChatMessage("assistant", "Let me look.", tool_calls=[ToolCall("get_time", {}, id="c")]),
        ],
        tools=[WEATHER],
        add_generation_prompt=False,
    )
    assert rendered.startswith("<|im_start|>system\n# Tools\n\n")
    assert rendered.endswith(
        "<|im_start|>assistant\nLet me look.\n<tool_call>\n"
        '{"name": "get_time", "arguments": {}}\n</tool_call><|im_end|>\n'
    )
    # no tools: no tools section, no empty system turn
    assert ChatTemplate(CHATML_TEMPLATE).render([ChatMessage("user", "Hi")], tools=[]) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


# A template in the style of the Hugging Face ecosystem, using the helpers and data shapes
# such templates rely on.
HF_STYLE = """
{%- set ns = namespace(calls=0) -%}
{{- bos_token -}}
{%- if tools is not none -%}
{{- 'TOOLS ' + tools | tojson + '\n' -}}
{%- endif -%}
{%- for message in messages -%}
    {%- if message.content == 'skip' -%}{%- continue -%}{%- endif -%}
    {%- if message.content == 'stop' -%}{%- break -%}{%- endif -%}
    {{- message.role + '|' + message.content -}}
    {%- if message.tool_calls is defined -%}
        {%- for call in message.tool_calls -%}
            {{- ' CALL ' + call.id + ' ' + call.type + ' ' + call.function.name + ' ' -}}
            {{- call.function.arguments | tojson(indent=1) -}}
            {%- set ns.calls = ns.calls + 1 -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if message.tool_call_id is defined -%}
        {{- ' id=' + message.tool_call_id + ' name=' + message.name -}}
    {%- endif -%}
    {{- '\n' -}}
{%- endfor -%}
{{- 'calls=' ~ ns.calls ~ ' year=' ~ (strftime_now('%Y') | length) ~ ' extra=' ~ flavour -}}
{%- if add_generation_prompt %} GO{% endif -%}
{{- eos_token -}}
"""


def test_hugging_face_conventions() -> None:
    template = ChatTemplate(HF_STYLE, bos_token="<s>", eos_token="</s>")
    assert template.supports_tools
    rendered = template.render(
        [
            ChatMessage("user", "héllo"),
            ChatMessage("assistant", "", tool_calls=[ToolCall("f", {"q": "ü"}, id="call_9")]),
            ChatMessage("tool", "42", tool_call_id="call_9", tool_name="f"),
        ],
        tools=[WEATHER],
        extra_context={"flavour": "mint", "messages": "ignored"},
    )
    assert rendered.startswith('<s>TOOLS [{"type": "function", "function": {"name": "get_weather"')
    assert rendered.endswith(
        "user|héllo\n"
        'assistant| CALL call_9 function f {\n "q": "ü"\n}\n'
        "tool|42 id=call_9 name=f\n"
        "calls=1 year=4 extra=mint GO</s>"
    )


def test_loop_controls_and_no_tools_is_none() -> None:
    template = ChatTemplate(HF_STYLE)
    rendered = template.render(
        [
            ChatMessage("user", "a"),
            ChatMessage("user", "skip"),
            ChatMessage("user", "b"),
            ChatMessage("user", "stop"),
            ChatMessage("user", "never"),
        ],
        add_generation_prompt=False,
    )
    assert rendered == "user|a\nuser|b\ncalls=0 year=4 extra="


def test_message_dicts_leave_unused_keys_out() -> None:
    dicts = message_dicts(
        [
            ChatMessage("developer", "d"),
            ChatMessage("assistant", "a", thinking="hmm"),
            ChatMessage("tool", "r", tool_call_id="c1", tool_name="f"),
        ]
    )
    assert dicts == [
        {"role": "system", "content": "d"},
        {"role": "assistant", "content": "a", "reasoning_content": "hmm"},
        {"role": "tool", "content": "r", "tool_call_id": "c1", "name": "f"},
    ]


def test_raise_exception_is_a_client_error() -> None:
    template = ChatTemplate(
        "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}"
        "{% endif %}ok"
    )
    assert template.render([ChatMessage("user", "x")]) == "ok"
    with pytest.raises(TemplateError, match="first must be user") as caught:
        template.render([ChatMessage("assistant", "x")])
    assert isinstance(caught.value, InvalidRequest)
    assert caught.value.http_status == 400
    assert caught.value.code == "invalid_template"


def test_syntax_error_is_reported_at_construction() -> None:
    with pytest.raises(TemplateError, match="syntax error at line 2"):
        ChatTemplate("ok\n{% for %}")
    with pytest.raises(TemplateError, match="unknown_filter"):
        ChatTemplate("{{ 'x' | unknown_filter }}")


def test_runtime_type_error_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="TypeError"):
        ChatTemplate("{{ 'a' + 1 }}").render([])


def test_compiled_templates_are_cached_by_source() -> None:
    source = CHATML_TEMPLATE + "{# cache probe #}"
    assert compile_template(source) is compile_template(source)
    first, second = ChatTemplate(source), ChatTemplate(source)
    assert first.render([ChatMessage("user", "x")]) == second.render([ChatMessage("user", "x")])

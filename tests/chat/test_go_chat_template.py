"""Ollama's Go chat templates render conversations as Ollama renders them: the data a
template sees (``.Messages``, ``.Tools``, ``.System``, ``.Think``...), collation, the legacy
``.Prompt``/``.Response`` path, and the ChatTemplate interface prompt building relies on.

The templates are written here in the style of Ollama's (ChatML, Llama 3 with tools,
a legacy one, one that thinks); the expected texts are what Ollama writes for them."""

from __future__ import annotations

import pytest

from power_core.chat.fitting import fitted_prompt
from power_core.chat.go_template.chat_template import GoChatTemplate, go_template_problem
from power_core.chat.go_template.ollama_data import ThinkValues
from power_core.chat.sandbox import TemplateError
from power_core.chat.template import render_prompt
from power_core.chat.template_syntax import template_thinks
from power_core.types import ChatMessage, ToolCall, ToolSpec

CHATML = """{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}

# Tools
<tools>
{{- range .Tools }}
{{ . }}
{{- end }}
</tools>
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}"""

LLAMA3 = """{{- if or .System .Tools }}<|start_header_id|>system<|end_header_id|>
{{- if .System }}

{{ .System }}
{{- end }}
{{- if .Tools }}

You can call these functions:
{{- range .Tools }}
{{ json .Function }}
{{- end }}
{{- end }}<|eot_id|>
{{- end }}
{{- range $i, $m := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq $m.Role "user" }}<|start_header_id|>user<|end_header_id|>

{{ $m.Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- else if eq $m.Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>
{{- if $m.ToolCalls }}
{{ range $m.ToolCalls -}}
{"name": "{{ .Function.Name }}", "parameters": {{ .Function.Arguments }}}
{{- end }}
{{- else }}

{{ $m.Content }}
{{- end }}{{ if not $last }}<|eot_id|>{{ end }}
{{- else if eq $m.Role "tool" }}<|start_header_id|>ipython<|end_header_id|>

{{ $m.Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}
{{- end }}"""

LEGACY = """{{ if .System }}<|system|>
{{ .System }}</s>
{{ end }}{{ if .Prompt }}<|user|>
{{ .Prompt }}</s>
{{ end }}<|assistant|>
{{ .Response }}</s>
"""

THINKING = """{{- range $i, $m := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
<|{{ $m.Role }}|>
{{- if and (eq $m.Role "assistant") $m.Thinking }}<think>{{ $m.Thinking }}</think>{{ end }}
{{ $m.Content }}
{{- if and $last (ne $m.Role "assistant") }}
<|assistant|>
{{- if and $.IsThinkSet (not $.Think) }}<think></think>{{ else if $.Think }}<think>{{ end }}
{{- end }}
{{- end }}"""

WEATHER = ToolSpec(
    name="get_weather",
    description="Weather <now> & later",
    parameters={
        "type": "object",
        "properties": {
            "unit": {"type": "string", "enum": ["c", "f"]},
            "city": {"type": "string", "description": "City name", "minLength": 1},
        },
        "required": ["city"],
    },
)
WEATHER_JSON = (
    '{"type":"function","function":{"name":"get_weather",'
    '"description":"Weather \\u003cnow\\u003e \\u0026 later","parameters":{"type":"object",'
    '"required":["city"],"properties":{"city":{"type":"string","description":"City name"},'
    '"unit":{"type":"string","enum":["c","f"]}}}}}'
)
TOOL_TURNS = [
    ChatMessage("system", "Be brief."),
    ChatMessage("user", "Weather in Paris?"),
    ChatMessage(
        "assistant", "", tool_calls=[ToolCall("get_weather", {"city": "Paris", "days": 2})]
    ),
    ChatMessage("tool", "18C", tool_name="get_weather"),
]


def test_chatml_with_tools() -> None:
    # tools print as Ollama's JSON: sorted properties, unknown keywords dropped, <>& escaped
    template = GoChatTemplate(CHATML)
    assert template.supports_tools
    assert render_prompt(template, TOOL_TURNS, [WEATHER]) == (
        "<|im_start|>system\nBe brief.\n\n# Tools\n<tools>\n"
        + WEATHER_JSON
        + "\n</tools><|im_end|>\n"
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        "<|im_start|>assistant\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city":"Paris","days":2}}\n'
        "</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n18C\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_llama3_with_tools_and_last() -> None:
    template = GoChatTemplate(LLAMA3)
    assert render_prompt(template, TOOL_TURNS, [WEATHER]) == (
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.\n\n"
        'You can call these functions:\n{"name":"get_weather",'
        '"description":"Weather \\u003cnow\\u003e \\u0026 later","parameters":{"type":"object",'
        '"required":["city"],"properties":{"city":{"type":"string","description":"City name"},'
        '"unit":{"type":"string","enum":["c","f"]}}}}<|eot_id|>'
        "<|start_header_id|>user<|end_header_id|>\n\nWeather in Paris?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n"
        '{"name": "get_weather", "parameters": {"city":"Paris","days":2}}<|eot_id|>'
        "<|start_header_id|>ipython<|end_header_id|>\n\n18C<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    # $last leaves a final answer open: the model goes on with it
    begun = [ChatMessage("user", "Count"), ChatMessage("assistant", "1, 2,")]
    assert render_prompt(template, begun, None) == (
        "<|start_header_id|>user<|end_header_id|>\n\nCount<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n1, 2,"
    )


def test_legacy_template_runs_once_per_exchange() -> None:
    template = GoChatTemplate(LEGACY)
    assert not template.supports_tools
    conversation = [
        ChatMessage("system", "S"),
        ChatMessage("user", "hi"),
        ChatMessage("assistant", "hello"),
        ChatMessage("user", "bye"),
    ]
    # the last run stops right after .Response: the assistant's turn is left open
    assert render_prompt(template, conversation, None) == (
        "<|system|>\nS</s>\n<|user|>\nhi</s>\n<|assistant|>\nhello</s>\n"
        "<|user|>\nbye</s>\n<|assistant|>\n"
    )
    begun = [*conversation, ChatMessage("assistant", "see")]
    assert render_prompt(template, begun, None).endswith("<|user|>\nbye</s>\n<|assistant|>\nsee")
    # a system message in the middle starts a new exchange of its own
    later_system = [*conversation[:3], ChatMessage("system", "T"), ChatMessage("user", "x")]
    assert template.render(later_system) == (
        "<|system|>\nS</s>\n<|user|>\nhi</s>\n<|assistant|>\nhello</s>\n"
        "<|system|>\nT</s>\n<|user|>\nx</s>\n<|assistant|>\n"
    )


def test_a_template_without_response_gets_one_appended() -> None:
    # as Ollama's Parse does: {{ .Prompt }} alone becomes {{ .Prompt }}{{ .Response }}
    conversation = [
        ChatMessage("user", "a"),
        ChatMessage("assistant", "b"),
        ChatMessage("user", "c"),
    ]
    assert GoChatTemplate("[{{ .Prompt }}]").render(conversation) == "[a]b[c]"


def test_thinking_template() -> None:
    conversation = [
        ChatMessage("user", "a"),
        ChatMessage("assistant", "b", thinking="hmm"),
        ChatMessage("user", "c"),
    ]
    history = "<|user|>\na<|assistant|><think>hmm</think>\nb<|user|>\nc\n<|assistant|>"
    assert (
        GoChatTemplate(THINKING, think=ThinkValues(True)).render(conversation)
        == history + "<think>"
    )
    assert (
        GoChatTemplate(THINKING, think=ThinkValues(False)).render(conversation)
        == history + "<think></think>"
    )
    assert GoChatTemplate(THINKING).render(conversation) == history


def test_what_templates_see() -> None:
    source = (
        "{{ .System }}|{{ range .Messages }}{{ .Role }}:{{ .Content }}"
        "{{ range .ToolCalls }}[{{ .Function.Index }} {{ .Function.Name }} "
        "{{ .Function.Arguments.n }} {{ json .Function.Arguments }}]{{ end }}"
        "{{ if .ToolName }}({{ .ToolName }} {{ .ToolCallID }}){{ end }}"
        "{{ if .Images }}<{{ len .Images }} image>{{ end }};{{ end }}"
        "|{{ .Tools }}|{{ .Think }} {{ .ThinkLevel }} {{ .IsThinkSet }}|{{ .Prompt }}"
    )
    conversation = [
        ChatMessage("system", "A"),
        ChatMessage("system", "B"),
        ChatMessage("user", "x", images=[b"\x89PNG"]),
        ChatMessage("user", "y"),  # merged into the one before, as collate merges them
        ChatMessage(
            "assistant",
            "",
            tool_calls=[ToolCall("f", {"n": 1000000}), ToolCall("g", {"b": [1], "a": "<"})],
        ),
        ChatMessage("tool", "r1", tool_name="f", tool_call_id="call_1"),
        ChatMessage("tool", "r2", tool_name="g"),
    ]
    assert GoChatTemplate(source, think=ThinkValues(True)).render(conversation) == (
        "A\n\nB|system:A\n\nB;user:x\n\ny<1 image>;"
        'assistant:[0 f 1e+06 {"n":1000000}][1 g <no value> {"a":"\\u003c","b":[1]}];'
        "tool:r1(f call_1);tool:r2(g );"
        "|null|true medium true|<no value>"
    )
    # a level asked for (Ollama's think: "high", OpenAI's reasoning_effort) is the level
    high = GoChatTemplate(
        "{{ .Think }} {{ .ThinkLevel }} {{ .IsThinkSet }}", think=ThinkValues(True, "high")
    )
    assert high.render([ChatMessage("user", "x")]) == "true high true"


def test_tool_fields() -> None:
    # .Tools is there for templates that name .Messages (the others run the legacy way)
    source = (
        "{{ if .Messages }}{{ end }}"
        "{{ range .Tools }}{{ .Type }} {{ .Function.Name }}: {{ .Function.Description }} "
        "{{ .Function.Parameters.Type }} {{ .Function.Parameters.Required }} "
        "{{ range $name, $p := .Function.Parameters.Properties }}"
        "{{ $name }}={{ $p.Type }}/{{ $p.Description }}/{{ $p.Enum }}/{{ toTypeScriptType $p }};"
        "{{ end }}{{ .Function.Parameters.Properties }}{{ end }}"
    )
    assert GoChatTemplate(source).render([ChatMessage("user", "x")], tools=[WEATHER]) == (
        "function get_weather: Weather <now> & later object [city] "
        "city=string/City name/[]/string;unit=string//[c f]/string;"
        '{"city":{"type":"string","description":"City name"},'
        '"unit":{"type":"string","enum":["c","f"]}}'
    )


def test_fill_in_the_middle() -> None:
    template = GoChatTemplate(
        "{{ if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>"
        "{{ else }}{{ .Prompt }}{{ end }}"
    )
    assert template.uses_suffix
    assert template.render_insert("def f(", "return x") == "<PRE> def f( <SUF>return x <MID>"
    assert not GoChatTemplate(CHATML).uses_suffix


def test_fitting_drops_the_oldest_turns() -> None:
    template = GoChatTemplate(LEGACY)
    conversation = [
        ChatMessage("system", "S"),
        ChatMessage("user", "old " * 50),
        ChatMessage("assistant", "answer " * 50),
        ChatMessage("user", "new"),
    ]
    text = fitted_prompt(
        conversation,
        lambda messages: render_prompt(template, messages, None),
        count_tokens=len,
        budget=60,
        limit=1000,
    )
    assert text == "<|system|>\nS</s>\n<|user|>\nnew</s>\n<|assistant|>\n"


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ('{{ template "tools" . }}{{ .Prompt }}', "{{template}}"),
        ('{{ define "x" }}{{ end }}{{ .Prompt }}', "{{define}}"),
        ("{{ call .Prompt }}", "'call'"),
        ("{{ .Prompt | nosuch }}", "function 'nosuch' not defined"),
    ],
)
def test_what_cannot_run_fails_at_compile_naming_it(source: str, named: str) -> None:
    with pytest.raises(TemplateError, match="Go template") as caught:
        GoChatTemplate(source)
    assert named in caught.value.message
    assert named in (go_template_problem(source) or "")
    assert go_template_problem(CHATML) is None


def test_a_template_that_fails_while_rendering_is_a_template_error() -> None:
    template = GoChatTemplate("{{ range .Messages }}{{ .Nope }}{{ end }}")
    with pytest.raises(TemplateError, match="can't evaluate field Nope"):
        template.render([ChatMessage("user", "x")])


def test_a_long_template_is_refused_and_a_deep_legacy_one_runs() -> None:
    with pytest.raises(TemplateError, match="at most 65536 are compiled"):
        GoChatTemplate("{{ .Prompt }}" * 6000)
    # a legacy template's last run is a cut copy of its tree: made without copying the
    # tree deeply (100 nested ifs raised RecursionError there, a 500)
    deep = "{{ if 1 }}" * 100 + "{{ .Prompt }}{{ .Response }}" + "{{ end }}" * 100
    conversation = [ChatMessage("user", "x"), ChatMessage("assistant", "y")]
    assert GoChatTemplate(deep).render([*conversation, ChatMessage("user", "z")]) == "xyz"


def test_a_final_answer_is_continued_only_where_the_template_leaves_it_open() -> None:
    # as in Ollama, a Go template runs as written: one that closes every message closes
    # the final answer too and opens a new turn, where a Jinja template would be cut
    closes_all = (
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
        "{{ end }}<|im_start|>assistant\n"
    )
    begun = [ChatMessage("user", "Count"), ChatMessage("assistant", "1, 2,")]
    assert render_prompt(GoChatTemplate(closes_all), begun, None) == (
        "<|im_start|>user\nCount<|im_end|>\n<|im_start|>assistant\n1, 2,<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_a_go_template_thinks_only_where_it_shows_the_thinking() -> None:
    # as Ollama decides: a literal <think> in a Go template is text it writes
    assert template_thinks("{{ range .Messages }}<think>{{ .Thinking }}</think>{{ end }}")
    assert not template_thinks("{{ range .Messages }}{{ .Content }}{{ end }}<think>\n")
    assert template_thinks("{% for m in messages %}{{ m.content }}{% endfor %}<think>\n")

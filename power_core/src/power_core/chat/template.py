"""Chat templates: turning a conversation into the prompt text a model was trained on.

A model's template (Jinja2, from its GGUF metadata or a Modelfile ``TEMPLATE``) is rendered the
way Hugging Face ``transformers`` renders it, so templates written for that ecosystem work
unchanged: messages become plain dicts, tools become OpenAI-style function entries, and
``raise_exception``, ``strftime_now`` and a non-escaping ``tojson`` are available. Rendering runs
in the hardened sandbox of :mod:`power_core.chat.sandbox`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from power_core.chat.sandbox import (
    MAX_OUTPUT_CHARS,
    TemplateError,
    compile_template,
    render_template,
)
from power_core.chat.template_inputs import input_size, tool_dicts
from power_core.types import ChatMessage, ToolSpec

__all__ = [
    "CHATML_TEMPLATE",
    "ChatTemplate",
    "PromptTemplate",
    "TemplateError",
    "message_dicts",
    "tool_dicts",
]


#: The template used when a model brings none: ChatML, with Hermes/Qwen-style tool calling
#: (tool signatures in the system turn, calls as ``<tool_call>{json}</tool_call>`` blocks,
#: results as ``<tool_response>`` blocks in a ``tool`` turn).
CHATML_TEMPLATE = (
    "{%- if messages and messages[0].role == 'system' -%}\n"
    "    {%- set system = messages[0].content -%}\n"
    "    {%- set conversation = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set system = none -%}\n"
    "    {%- set conversation = messages -%}\n"
    "{%- endif -%}\n"
    "{%- if system is not none or tools -%}\n"
    "    {{- '<|im_start|>system\\n' -}}\n"
    "    {%- if system is not none -%}{{- system -}}{%- endif -%}\n"
    "    {%- if tools -%}\n"
    "        {%- if system is not none -%}{{- '\\n\\n' -}}{%- endif -%}\n"
    "        {{- '# Tools\\n\\nYou may call one or more of the functions below. Their signatures,"
    " one JSON object per line, are inside <tools></tools>:\\n<tools>\\n' -}}\n"
    "        {%- for tool in tools -%}{{- tool | tojson -}}{{- '\\n' -}}{%- endfor -%}\n"
    "        {{- '</tools>\\n\\nTo call a function, answer with one JSON object per call, each"
    ' inside <tool_call></tool_call> tags:\\n<tool_call>\\n{"name": <function name>,'
    ' "arguments": <arguments as a JSON object>}\\n</tool_call>\' -}}\n'
    "    {%- endif -%}\n"
    "    {{- '<|im_end|>\\n' -}}\n"
    "{%- endif -%}\n"
    "{%- for message in conversation -%}\n"
    "    {%- if message.role == 'assistant' -%}\n"
    "        {{- '<|im_start|>assistant\\n' + message.content -}}\n"
    "        {%- for call in message.tool_calls -%}\n"
    "            {%- if message.content or not loop.first -%}{{- '\\n' -}}{%- endif -%}\n"
    "            {{- '<tool_call>\\n' -}}\n"
    "            {{- {'name': call.function.name, 'arguments': call.function.arguments}"
    " | tojson -}}\n"
    "            {{- '\\n</tool_call>' -}}\n"
    "        {%- endfor -%}\n"
    "        {{- '<|im_end|>\\n' -}}\n"
    "    {%- elif message.role == 'tool' -%}\n"
    "        {{- '<|im_start|>tool\\n<tool_response>\\n' + message.content"
    " + '\\n</tool_response><|im_end|>\\n' -}}\n"
    "    {%- else -%}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}\n"
    "    {%- endif -%}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}\n"
)


def message_dicts(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Turn messages into the dicts Hugging Face chat templates expect.

    Keys a message does not use are left out rather than set to empty values, because
    templates test them with ``is defined`` and ``in``. ``developer`` becomes ``system``.
    """
    result: list[dict[str, Any]] = []
    for message in messages:
        item: dict[str, Any] = {
            "role": "system" if message.role == "developer" else message.role,
            "content": message.content,
        }
        if message.tool_calls:
            item["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls
            ]
        if message.tool_call_id is not None:
            item["tool_call_id"] = message.tool_call_id
        if message.tool_name is not None:
            item["name"] = message.tool_name
        if message.thinking:
            # the key reasoning-model templates (Qwen3, DeepSeek-R1 ports) read
            item["reasoning_content"] = message.thinking
        result.append(item)
    return result


class PromptTemplate(Protocol):
    """What prompt building needs of a chat template: :class:`ChatTemplate` (Jinja) and
    :class:`~power_core.chat.go_template.chat_template.GoChatTemplate` (Ollama's Go)."""

    source: str
    #: whether :func:`render_prompt` leaves a final assistant message open by cutting the
    #: rendering where its text goes (Jinja templates close every message); a Go template
    #: runs as written, as in Ollama, where its own ``$last`` logic leaves the answer open
    cut_to_continue: bool

    @property
    def supports_tools(self) -> bool:
        """Whether the template can describe tools to the model."""
        ...

    def render(
        self,
        messages: list[ChatMessage],
        *,
        tools: list[ToolSpec] | None = None,
        add_generation_prompt: bool = True,
        extra_context: dict[str, Any] | None = None,
    ) -> str:
        """Render ``messages`` (and ``tools``) into prompt text."""
        ...


class ChatTemplate:
    """A compiled chat template, rendered once per request.

    Compilation is cached by source, so building a :class:`ChatTemplate` for every request is
    cheap. A source that is not valid Jinja2 raises :class:`TemplateError` here.
    """

    cut_to_continue = True

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "") -> None:
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self._compiled = compile_template(source)

    @property
    def supports_tools(self) -> bool:
        """Whether the template refers to ``tools``, i.e. can describe tools to the model."""
        return self._compiled.uses_tools

    def render(
        self,
        messages: list[ChatMessage],
        *,
        tools: list[ToolSpec] | None = None,
        add_generation_prompt: bool = True,
        extra_context: dict[str, Any] | None = None,
    ) -> str:
        """Render ``messages`` (and ``tools``) into prompt text.

        ``extra_context`` adds variables some templates read (``enable_thinking``,
        ``documents``, ...); it cannot replace ``messages``, ``tools`` or
        ``add_generation_prompt``. Raises :class:`TemplateError` when the template fails,
        refuses the conversation (``raise_exception``), or exceeds its time or size limits.
        """
        dicts = message_dicts(messages)
        tool_entries = tool_dicts(tools) if tools else None
        context: dict[str, Any] = {
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            **(extra_context or {}),
            "messages": dicts,
            # ``None`` rather than absent, as transformers passes it
            "tools": tool_entries,
            "add_generation_prompt": add_generation_prompt,
        }
        # Output legitimately grows with the conversation; the limit guards against templates
        # that multiply it.
        max_chars = MAX_OUTPUT_CHARS + 2 * input_size(messages, tool_entries)
        return render_template(self._compiled, context, max_chars)


def continues_last_message(messages: list[ChatMessage]) -> bool:
    """Whether a conversation ends with an assistant message for the model to go on with
    (text, no tool calls), as Ollama continues one: clients write the start of an answer
    ("1, 2, 3,") and the model carries on from it."""
    if not messages:
        return False
    last = messages[-1]
    return last.role == "assistant" and bool(last.content) and not last.tool_calls


#: stands in for a final assistant message's text while the prompt is rendered, to find
#: where the template puts it: letters and digits survive ``trim``, escaping and case changes
_CONTINUE_HERE = "A3SPOWERCONTINUESHERE7"


def render_prompt(
    template: PromptTemplate, messages: list[ChatMessage], tools: list[ToolSpec] | None
) -> str:
    """The prompt of a conversation: a new assistant turn opened after it, or, when it ends
    with an unfinished assistant message, that message left open.

    Chat templates close every message, so the open one is the conversation rendered
    without a generation prompt, cut where the message's text goes (as llama.cpp's server
    and vLLM continue a final message); that place is found with a stand-in for the text,
    whatever the text holds. A template that does not show the stand-in as it is leaves
    nothing to cut at: the message stays closed and a new turn opens. A Go template is
    never cut (``cut_to_continue``): Ollama runs it as written.
    """
    if template.cut_to_continue and continues_last_message(messages):
        last = messages[-1]
        marked = [*messages[:-1], replace(last, content=_CONTINUE_HERE)]
        rendered = template.render(marked, tools=tools, add_generation_prompt=False)
        at = rendered.rfind(_CONTINUE_HERE)
        if at >= 0:
            return rendered[:at] + last.content
    return template.render(messages, tools=tools, add_generation_prompt=True)

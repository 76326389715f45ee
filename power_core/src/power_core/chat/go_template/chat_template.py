"""An Ollama (Go) chat template behind the interface of
:class:`~power_core.chat.template.ChatTemplate`, so prompt rendering, the continuation of
a final assistant message and history fitting treat both kinds alike."""

from __future__ import annotations

from typing import Any

from power_core.chat.go_template.ollama_data import ThinkValues
from power_core.chat.go_template.ollama_template import OllamaTemplate, compile_ollama_template
from power_core.chat.render_budget import MAX_OUTPUT_CHARS, TemplateError
from power_core.chat.template_inputs import input_size, tool_dicts
from power_core.types import ChatMessage, ToolSpec


class GoChatTemplate:
    """A compiled Go template, rendered once per request as Ollama renders it.

    ``think`` is the request's ``think`` and level (``.Think``, ``.ThinkLevel``,
    ``.IsThinkSet``).
    A source that is not valid Go, or uses what this interpreter does not run, raises
    :class:`TemplateError` here.
    """

    #: run as written, as Ollama runs it: no cut after a final assistant message
    cut_to_continue = False

    def __init__(self, source: str, *, think: ThinkValues | None = None) -> None:
        self.source = source
        self.think = think or ThinkValues()
        self._compiled: OllamaTemplate = compile_ollama_template(source)

    @property
    def supports_tools(self) -> bool:
        """Whether the template names ``.Tools`` (Ollama's ``tools`` capability)."""
        return "tools" in self._compiled.names

    @property
    def uses_suffix(self) -> bool:
        """Whether the template names ``.Suffix`` (it writes fill-in-the-middle prompts)."""
        return "suffix" in self._compiled.names

    def render(
        self,
        messages: list[ChatMessage],
        *,
        tools: list[ToolSpec] | None = None,
        add_generation_prompt: bool = True,
        extra_context: dict[str, Any] | None = None,
    ) -> str:
        """Render ``messages`` (and ``tools``) into prompt text.

        A Go template opens the assistant's turn itself (Ollama has no switch for it), so
        ``add_generation_prompt`` changes nothing; ``extra_context`` adds or replaces
        top-level values (``.Think``...). Raises :class:`TemplateError` when the template
        fails or exceeds its time or size limits.
        """
        del add_generation_prompt
        entries = tool_dicts(tools) if tools else None
        max_chars = MAX_OUTPUT_CHARS + 2 * input_size(messages, entries)
        return self._compiled.render(
            messages, tools, think=self.think, max_chars=max_chars, extra=extra_context
        )

    def render_insert(self, prompt: str, suffix: str) -> str:
        """The fill-in-the-middle prompt of ``prompt`` and ``suffix`` (``.Prompt``, ``.Suffix``)."""
        max_chars = MAX_OUTPUT_CHARS + 2 * (len(prompt) + len(suffix))
        return self._compiled.render_insert(prompt, suffix, think=self.think, max_chars=max_chars)


def go_template_problem(source: str) -> str | None:
    """Why a Go template cannot be run here (its :class:`TemplateError`), ``None`` if it can."""
    try:
        compile_ollama_template(source)
    except TemplateError as exc:
        return exc.message
    return None

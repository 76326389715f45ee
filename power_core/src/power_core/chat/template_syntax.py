"""What a chat template's text says about itself, without rendering it: whether it is in
Go's syntax (Ollama's, run by :mod:`power_core.chat.go_template`) rather than Jinja, and
whether it has the model reason apart. Cheap to import: the store reads it to derive
capabilities, and the API surfaces to check a request's own template."""

from __future__ import annotations

import re

_GO_TEMPLATE = re.compile(r"\{\{-?\s*(\.|if \.|range \.|end\b)")


def go_template_note(problem: str) -> str:
    """Why a stored Go template shapes no prompt: ``problem`` says what in it cannot run."""
    return (
        f"the TEMPLATE is a Go template (Ollama's syntax) that A3S Power cannot run: {problem}; "
        "prompts use the model's own Jinja chat template from its GGUF"
    )


def is_go_template(text: str) -> bool:
    """Whether ``text`` is in Go's template syntax (``{{ .Prompt }}``, ``{{ if .System }}``),
    as Ollama's Modelfiles and registry models carry, rather than Jinja."""
    return bool(_GO_TEMPLATE.search(text))


def template_thinks(template: str) -> bool:
    """Whether a chat template has the model reason apart (the ``thinking`` capability).
    A Go template does when it shows the messages' ``.Thinking``, as Ollama decides: a
    literal ``<think>`` in one is text it writes, not a place for reasoning."""
    if is_go_template(template):
        return ".Thinking" in template
    return any(marker in template for marker in ("<think>", "enable_thinking"))

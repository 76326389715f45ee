"""What a chat template's text says about itself, without rendering it: whether it is in
Go's syntax (Ollama's, which this server does not run) and whether it has the model reason
apart. Cheap to import: the store reads it to derive capabilities, and the API surfaces to
check a request's own template."""

from __future__ import annotations

import re

_GO_TEMPLATE = re.compile(r"\{\{-?\s*(\.|if \.|range \.|end\b)")

#: why a Go template does nothing here
GO_TEMPLATE_NOTE = (
    "the TEMPLATE is a Go template (Ollama's syntax), which A3S Power does not run; "
    "prompts use the model's own Jinja chat template from its GGUF"
)


def is_go_template(text: str) -> bool:
    """Whether ``text`` is in Go's template syntax (``{{ .Prompt }}``, ``{{ if .System }}``),
    as Ollama's Modelfiles and registry models carry, rather than Jinja."""
    return bool(_GO_TEMPLATE.search(text))


def template_thinks(template: str) -> bool:
    """Whether a chat template has the model reason apart (the ``thinking`` capability)."""
    return any(marker in template for marker in ("<think>", "enable_thinking", ".Thinking"))

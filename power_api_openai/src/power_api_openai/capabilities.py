"""What a request may ask of a model, refused as Ollama's ``/v1`` refuses it.

A model whose template never shows it the tools cannot choose to call one: ``tools`` with
``tool_choice`` ``auto`` would be silently dropped, and clients (LangChain's
``bind_tools``, LiteLLM) would believe the tools bound. Forcing a call (``required`` or a
named function) still works on any model, through a grammar. Reasoning effort asked of a
model that does not reason is refused too; on one that does, ``none`` turns reasoning off.
"""

from __future__ import annotations

from power_core.errors import InvalidRequest
from power_core.models import ResolvedModel
from power_core.types import GenerationRequest


def apply_model_capabilities(
    model: ResolvedModel, request: GenerationRequest, effort: str | None, effort_param: str
) -> None:
    """Set ``request.think`` from ``effort`` and refuse what ``model`` cannot do."""
    if "thinking" in model.capabilities:
        # reasoning goes to its own field or item, not the answer's text
        request.think = effort != "none"
    elif effort not in (None, "none"):
        raise InvalidRequest(f'"{model.name}" does not support thinking', param=effort_param)
    may_call = request.tool_choice == "auto" and request.response_format is None
    if request.tools and may_call and "tools" not in model.capabilities:
        raise InvalidRequest(f'"{model.name}" does not support tools', param="tools")

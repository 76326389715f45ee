"""``reasoning_effort`` (``reasoning.effort`` on ``/v1/responses``) read as Ollama's ``/v1``
reads it: ``none`` turns a reasoning model's reasoning off, any other effort asked of a model
that does not reason is refused. What else a model cannot do (tools its template never
shows, images) is refused by :meth:`PowerServices.generate` for every surface.
"""

from __future__ import annotations

from power_core.errors import InvalidRequest
from power_core.models import ResolvedModel
from power_core.types import GenerationRequest


def apply_reasoning_effort(
    model: ResolvedModel, request: GenerationRequest, effort: str | None, effort_param: str
) -> None:
    """Set ``request.think`` from ``effort``, or refuse an effort ``model`` cannot make."""
    if "thinking" in model.capabilities:
        # reasoning goes to its own field or item, not the answer's text
        request.think = effort != "none"
        if effort in ("low", "medium", "high"):
            request.think_level = effort
    elif effort not in (None, "none"):
        raise InvalidRequest(f'"{model.name}" does not support thinking', param=effort_param)

"""``GET /v1/models`` and ``GET /v1/models/{id}`` in Anthropic's shape, for a client that
says it speaks Anthropic's API (an ``anthropic-version`` header, which the ``anthropic``
SDK sends on every request); the same paths answer OpenAI's clients in OpenAI's shape.

Each model tells its context window as ``max_input_tokens``: the context it loads with
(its Modelfile's ``num_ctx``, else the configured one, no longer than it was trained for).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from power_api_anthropic.fields import invalid
from power_core.models import ResolvedModel
from power_core.scheduler import planned_context
from power_core.services import PowerServices

#: models per page unless ``limit`` says otherwise, and the most it may say
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


def model_info(services: PowerServices, model: ResolvedModel) -> dict[str, Any]:
    context = planned_context(model, services.settings)
    return {
        "type": "model",
        "id": model.name,
        "display_name": model.name,
        "created_at": model.modified_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "lifecycle": "active",
        "max_input_tokens": context,
        "max_tokens": context,
    }


def list_models(services: PowerServices, args: dict[str, str]) -> dict[str, Any]:
    """A page of the stored models, most recently modified first: ``limit`` of them,
    after ``after_id`` or before ``before_id``."""
    limit = _limit(args.get("limit"))
    names = [summary.name for summary in services.library.list_models()]
    after, before = args.get("after_id"), args.get("before_id")
    if after is not None:
        names = names[names.index(after) + 1 :] if after in names else []
        page = names[:limit]
    elif before is not None:
        names = names[: names.index(before)] if before in names else []
        page = names[-limit:]
    else:
        page = names[:limit]
    data = [model_info(services, services.library.resolve(name)) for name in page]
    more = len(names) > len(page)
    return {
        "data": data,
        "first_id": page[0] if page else None,
        "has_more": more,
        "last_id": page[-1] if page else None,
    }


def retrieve_model(services: PowerServices, model_id: str) -> dict[str, Any]:
    """One model by name; ``ModelNotFound`` (404) for an unknown one."""
    return model_info(services, services.library.resolve(model_id))


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdecimal() or not 1 <= int(value) <= MAX_LIMIT:
        raise invalid("limit", f"Input should be an integer from 1 to {MAX_LIMIT}")
    return int(value)

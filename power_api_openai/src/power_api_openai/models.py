"""``GET /v1/models``, ``GET /v1/models/{id}`` and ``DELETE /v1/models/{id}``: the models in
the store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from power_core.names import DEFAULT_NAMESPACE, ModelRef
from power_core.services import PowerServices


def model_json(name: str, modified_at: datetime) -> dict[str, Any]:
    """One model object: ``created`` is when it was last written to the store."""
    return {
        "id": name,
        "object": "model",
        "created": int(modified_at.timestamp()),
        "owned_by": owner(name),
    }


def owner(name: str) -> str:
    """Who publishes a model: its namespace (``library`` for Ollama's own models)."""
    ref = ModelRef.parse(name)
    return ref.namespace or DEFAULT_NAMESPACE


def list_models(services: PowerServices) -> dict[str, Any]:
    """Every stored model, most recently modified first."""
    return {
        "object": "list",
        "data": [model_json(s.name, s.modified_at) for s in services.library.list_models()],
    }


def retrieve_model(services: PowerServices, model_id: str) -> dict[str, Any]:
    """One model by name; raises ``ModelNotFound`` (404) for an unknown one."""
    model = services.library.resolve(model_id)
    return model_json(model.name, model.modified_at)


def delete_model(services: PowerServices, model_id: str) -> dict[str, Any]:
    """Delete a stored model, as OpenAI deletes a fine-tuned one (Ollama's ``/api/delete``
    does the same): unloaded once its running requests end. ``ModelNotFound`` (404) for
    an unknown one."""
    name = services.library.resolve(model_id).name
    services.delete_model(name)
    return {"id": name, "object": "model", "deleted": True}

"""Model routes: ``/api/tags``, ``/api/show``, ``/api/copy``, ``/api/delete``, ``/api/ps``,
``/api/version``."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from flask import Blueprint, Response, request

from power_api_ollama.wire import json_response, model_name, opt_bool, opt_str, rfc3339
from power_core.errors import InvalidRequest
from power_core.models import ModelDetails
from power_core.scheduler import LoadedModel
from power_core.server.json_body import parse_json_object
from power_core.services import PowerServices

#: the Ollama release whose API these routes follow, which ``/api/version`` reports (the
#: ``ollama_version`` setting overrides it). Clients compare it with a minimum: VS Code's
#: Copilot refuses an Ollama below 0.6.4, others gate features (structured outputs from
#: 0.5, the Responses API from 0.13.3: OpenAI's Codex CLI wants 0.13.4). 0.14.0 is the first
#: release with every API this server serves: these routes' fields (``logprobs``, ``think``,
#: ``truncate``, ``shift``, ``dimensions``), ``/v1/responses`` (0.13.3) and the Anthropic
#: ``/v1/messages`` (0.14.0)
OLLAMA_API_VERSION = "0.14.0"

#: Ollama shows a model kept loaded forever as expiring in ~300 years
_FOREVER_SECONDS = 300 * 365 * 86_400


def details_json(details: ModelDetails) -> dict[str, Any]:
    """Ollama's ``details`` object."""
    payload = asdict(details)
    return {
        "parent_model": payload["parent_model"],
        "format": payload["format"],
        "family": payload["family"],
        "families": payload["families"] or None,
        "parameter_size": payload["parameter_size"],
        "quantization_level": payload["quantization_level"],
    }


def _expires_at(entry: LoadedModel, default_keep_alive: float) -> str:
    if entry.leases > 0:  # in use: the idle timer starts when it is released
        seconds = default_keep_alive if default_keep_alive >= 0 else _FOREVER_SECONDS
        return rfc3339(time.time() + seconds)
    if entry.expires_wall is None:
        return rfc3339(time.time() + _FOREVER_SECONDS)
    return rfc3339(entry.expires_wall)


def _required_text(body: dict[str, Any], key: str) -> str:
    value = opt_str(body, key)
    if not value:
        raise InvalidRequest(f"{key} is required", param=key)
    return value


def add_model_routes(blueprint: Blueprint, services: PowerServices) -> None:
    """Register the model-management routes on ``blueprint``."""
    library = services.library

    reported_version = services.settings.ollama_version or OLLAMA_API_VERSION

    @blueprint.get("/api/version")
    def version() -> Response:
        return json_response({"version": reported_version})

    @blueprint.get("/api/tags")
    def tags() -> Response:
        models = [
            {
                "name": summary.name,
                "model": summary.name,
                "modified_at": rfc3339(summary.modified_at),
                "size": summary.size,
                "digest": summary.digest,
                "details": details_json(summary.details),
            }
            for summary in library.list_models()
        ]
        return json_response({"models": models})

    @blueprint.post("/api/show")
    def show() -> Response:
        body = parse_json_object(request.get_data())
        verbose = opt_bool(body, "verbose", False)
        description = library.describe(model_name(body), verbose=verbose)
        model = description.model
        payload: dict[str, Any] = {
            "license": model.license or "",
            "modelfile": description.modelfile,
            "parameters": description.parameters_text,
            "template": model.template or "",
            "system": model.system or "",
            "details": details_json(model.details),
            "model_info": _shown_info(description.model_info, verbose, HIDDEN_INFO),
            "tensors": [
                {"name": name, "type": kind, "shape": list(shape)}
                for name, kind, shape in description.tensors
            ],
            "capabilities": list(model.capabilities),
            "modified_at": rfc3339(model.modified_at),
        }
        if description.projector_info is not None:
            payload["projector_info"] = _shown_info(description.projector_info, verbose)
        if model.messages:
            payload["messages"] = [{"role": m.role, "content": m.content} for m in model.messages]
        return json_response(payload)

    @blueprint.post("/api/copy")
    def copy() -> Response:
        body = parse_json_object(request.get_data())
        library.copy(_required_text(body, "source"), _required_text(body, "destination"))
        return Response(status=200)

    @blueprint.delete("/api/delete")
    def delete() -> Response:
        body = parse_json_object(request.get_data())
        services.delete_model(model_name(body))  # a missing model: ModelNotFound, a 404
        return Response(status=200)

    @blueprint.get("/api/ps")
    def ps() -> Response:
        default_keep_alive = services.settings.keep_alive
        models = [
            {
                "name": entry.model.name,
                "model": entry.model.name,
                "size": entry.engine.info.size_bytes,
                "digest": entry.model.digest,
                "details": details_json(entry.model.details),
                "expires_at": _expires_at(entry, default_keep_alive),
                "size_vram": entry.engine.info.gpu_bytes,
                "context_length": entry.engine.info.context_length,
            }
            for entry in services.loaded_models()
        ]
        return json_response({"models": models})


#: arrays longer than this are shown empty unless ``verbose``, as Ollama shows them
BRIEF_ARRAY = 5
#: what Ollama leaves out of a model's ``model_info``: its name, and the chat template
#: (``template`` shows the one prompts use)
HIDDEN_INFO = ("general.name", "tokenizer.chat_template")


def _shown_info(
    info: dict[str, Any], verbose: bool, hidden: tuple[str, ...] = ()
) -> dict[str, Any]:
    """GGUF metadata as ``/api/show`` gives it: long arrays (left out by the library as
    ``None`` too) as ``[]`` unless ``verbose``, and without ``hidden`` keys."""

    def shown(value: Any) -> Any:
        too_long = isinstance(value, list) and len(value) > BRIEF_ARRAY and not verbose
        return [] if value is None or too_long else value

    return {key: shown(value) for key, value in info.items() if key not in hidden}

"""The Flask app factory: core routes, CORS, logging, limits, and every API surface."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, jsonify, request
from flask_cors import CORS
from flask_sock import Sock
from werkzeug.exceptions import HTTPException

from power_core import __version__
from power_core.errors import InvalidRequest, PowerError
from power_core.scheduler import LoadedModel
from power_core.server.auth import require_api_keys
from power_core.server.json_body import parse_json_object
from power_core.server.surface import ApiContext
from power_core.services import PowerServices

log = logging.getLogger("power_core.server")

#: browsers on these origins may call the API (as Ollama allows by default)
LOCAL_ORIGINS = [
    re.compile(r"^https?://(localhost|127\.0\.0\.1|\[::1\]|0\.0\.0\.0)(:\d+)?$"),
    re.compile(r"^(app|tauri|file|vscode-webview|vscode-file)://.*$"),
]

#: what ``/`` answers: Ollama's own words, which clients and scripts compare exactly to tell
#: that an Ollama server is up (``text === "Ollama is running"``), as they read
#: ``/api/version`` for its release; ``/health`` says what this server is
RUNNING_TEXT = "Ollama is running"


def _cors_origins(configured: tuple[str, ...]) -> Any:
    if "*" in configured:
        return "*"
    return [*LOCAL_ORIGINS, *configured]


def loaded_model_json(entry: LoadedModel) -> dict[str, Any]:
    """A loaded model as the core's ``/power/loaded`` route reports it."""
    expires = (
        datetime.fromtimestamp(entry.expires_wall, UTC).isoformat()
        if entry.expires_wall is not None and entry.leases == 0
        else None
    )
    return {
        "name": entry.model.name,
        "digest": entry.model.digest,
        "size": entry.engine.info.size_bytes,
        "size_vram": entry.engine.info.gpu_bytes,
        "context_length": entry.engine.info.context_length,
        "expires_at": expires,
        "active": entry.leases,
    }


def create_app(services: PowerServices) -> Flask:
    """A Flask app serving the core routes and every registered API surface."""
    settings = services.settings
    # No static route: Flask would serve <working directory>/static/ to every client, as
    # "a3s_power" is no importable package whose folder it could use instead.
    app = Flask("a3s_power", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["a3s_power"] = services
    CORS(app, origins=_cors_origins(settings.origins), supports_credentials=False)
    # a WebSocket message is held to the size of a request's body (a larger one closes
    # the connection with 1009, "message too big")
    app.config["SOCK_SERVER_OPTIONS"] = {"max_message_size": settings.max_body_bytes}
    sock = Sock(app)

    require_api_keys(app, settings.api_keys)

    context = ApiContext(services=services, sock=sock)
    for surface in services.registry.api_surfaces().values():
        app.register_blueprint(surface.create_blueprint(context))
        log.debug("API surface %s registered", surface.name)

    @app.route("/", methods=["GET", "HEAD"])
    def root() -> Response:
        return Response(RUNNING_TEXT, mimetype="text/plain")

    @app.get("/health")
    def health() -> Response:
        body: dict[str, Any] = {
            "status": "ok",
            "version": __version__,
            "backends": sorted(services.registry.backends()),
            # the CLI's `run` chats through a server that has Ollama's API
            "apis": sorted(services.registry.api_surfaces()),
        }
        if not settings.api_keys:  # answered without a key where keys are required
            body["loaded_models"] = [e.model.name for e in services.loaded_models()]
        return jsonify(body)

    @app.get("/power/loaded")
    def loaded_models() -> Response:
        return jsonify(models=[loaded_model_json(e) for e in services.loaded_models()])

    @app.post("/power/unload")
    def unload_model() -> Response | tuple[Response, int]:
        try:
            body = parse_json_object(request.get_data())
            name = body.get("model")
            if name is None or name == "":
                raise InvalidRequest("'model' is required", param="model")
            if not isinstance(name, str):
                raise InvalidRequest("'model' must be a string", param="model")
            services.unload_model(name)
        except PowerError as exc:
            return jsonify(error=exc.message), exc.http_status
        return jsonify(status="unloaded")

    @app.errorhandler(PowerError)
    def power_error(exc: PowerError) -> tuple[Response, int]:
        # raised outside every surface: a refused key on a core route, say
        return jsonify(error=exc.message), exc.http_status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response | tuple[Response, int]:
        # A routing error (a method no route of the path takes, PROPFIND say) reaches no
        # blueprint's handlers: under a surface's prefix it is still answered in that
        # surface's shape; elsewhere (unknown paths, oversized bodies) in this one.
        surface = _surface_http_handler(app, request.path)
        if surface is not None:
            answer: Response = app.make_response(surface(exc))
            return answer
        return jsonify(error=exc.description or exc.name), exc.code or 500

    return app


def _surface_http_handler(app: Flask, path: str) -> Callable[[HTTPException], Any] | None:
    """The ``HTTPException`` handler of the blueprint with the longest URL prefix holding
    ``path`` (``/v1/messages`` before ``/v1``), if it registered one."""
    best: tuple[int, Callable[[HTTPException], Any]] | None = None
    for name, blueprint in app.blueprints.items():
        prefix = (blueprint.url_prefix or "").rstrip("/")
        if not prefix or not (path == prefix or path.startswith(prefix + "/")):
            continue
        handler = app.error_handler_spec.get(name, {}).get(None, {}).get(HTTPException)
        if handler is not None and (best is None or len(prefix) > best[0]):
            best = (len(prefix), handler)
    return best[1] if best is not None else None

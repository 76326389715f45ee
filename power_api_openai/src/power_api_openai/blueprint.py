"""The ``/v1`` blueprint: routes and error handlers in OpenAI's shape (a refused bearer key
included; the core checks keys, :mod:`power_core.server.auth`)."""

from __future__ import annotations

import logging
import re
from typing import Any, cast

from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from power_api_openai import URL_PREFIX, batches, conversations, files, stored_responses
from power_api_openai.background_responses import BackgroundRuns
from power_api_openai.batch_runs import BatchRuns
from power_api_openai.batch_store import BatchStore
from power_api_openai.chat import create_chat_completion
from power_api_openai.completions import create_completion
from power_api_openai.conversation_store import ConversationStore
from power_api_openai.embeddings import create_embeddings
from power_api_openai.errors import (
    auth_error_response,
    error_body,
    http_error_response,
    json_response,
    power_error_response,
)
from power_api_openai.file_store import FileStore
from power_api_openai.models import delete_model, list_models, retrieve_model
from power_api_openai.response_shelf import DiskShelf
from power_api_openai.response_store import ByteBudget, ResponseStore
from power_api_openai.responses import count_input_tokens, create_response, followed_frames
from power_api_openai.responses_socket import serve_responses_socket
from power_api_openai.sse import sse_response
from power_api_openai.validation import Fields
from power_core.errors import Unauthorized
from power_core.server.disconnect import is_client_gone_error
from power_core.server.json_body import parse_json_object
from power_core.server.views import answering_errors_with
from power_core.server.websocket import handshake_refusal
from power_core.services import PowerServices

log = logging.getLogger("power_api_openai")

#: the methods of each route, so a wrong method is a 405 in OpenAI's shape, not Flask's
ROUTE_METHODS = {
    "chat/completions": ("POST",),
    "completions": ("POST",),
    "embeddings": ("POST",),
    "responses": ("POST",),
    "responses/input_tokens": ("POST",),
    "conversations": ("POST",),
    "batches": ("GET", "POST"),
    "files": ("GET", "POST"),
    "models": ("GET", "HEAD"),
}
#: the same for routes with ids in their paths
ROUTE_PATTERN_METHODS = [
    (re.compile(r"models/.+"), ("GET", "HEAD", "DELETE")),
    (re.compile(r"responses/[^/]+"), ("GET", "DELETE")),
    (re.compile(r"responses/[^/]+/input_items"), ("GET",)),
    (re.compile(r"responses/[^/]+/cancel"), ("POST",)),
    (re.compile(r"conversations/[^/]+"), ("GET", "POST", "DELETE")),
    (re.compile(r"conversations/[^/]+/items"), ("GET", "POST")),
    (re.compile(r"conversations/[^/]+/items/[^/]+"), ("GET", "DELETE")),
    (re.compile(r"batches/[^/]+"), ("GET",)),
    (re.compile(r"batches/[^/]+/cancel"), ("POST",)),
    (re.compile(r"files/[^/]+"), ("GET", "DELETE")),
    (re.compile(r"files/[^/]+/content"), ("GET",)),
]
_ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def allowed_methods(path: str) -> tuple[str, ...] | None:
    """The methods of the route at ``path`` (under ``/v1``); ``None`` for no route."""
    if path in ROUTE_METHODS:
        return ROUTE_METHODS[path]
    for pattern, methods in ROUTE_PATTERN_METHODS:
        if pattern.fullmatch(path):
            return methods
    return None


def openai_blueprint(services: PowerServices, sock: Any = None) -> Blueprint:
    """Routes of the OpenAI API on ``services``; with the server's ``flask_sock.Sock``,
    the WebSocket mode of ``/v1/responses`` too."""
    bp = Blueprint("openai", __name__, url_prefix=URL_PREFIX)
    home = services.settings.home
    store = ResponseStore(
        services.settings.stored_responses_bytes, shelf=DiskShelf(home / "responses")
    )
    runs = BackgroundRuns()
    conversation_store = ConversationStore(home / "conversations", services.settings.max_body_bytes)
    uploaded = FileStore(home / "files")
    files.register(bp, uploaded)
    settings = services.settings
    batch_runs = BatchRuns(
        BatchStore(home / "batches"),
        uploaded,
        parallel=settings.num_parallel,
        api_key=settings.api_keys[0] if settings.api_keys else None,
        shutting_down=lambda: services.shutting_down,
    )
    bp.record_once(lambda state: batch_runs.resume(cast(Flask, state.app)))

    # the one place a PowerError (raised before a response starts) becomes a response
    handled = answering_errors_with(power_error_response)

    def body() -> dict[str, Any]:
        return parse_json_object(request.get_data())

    @bp.errorhandler(Unauthorized)
    def refused_key(_: Unauthorized) -> Response:
        # raised by the core's key check (power_core.server.auth) before any route runs
        return auth_error_response()

    @bp.post("/chat/completions")
    @handled
    def chat_completions() -> Response:
        return create_chat_completion(services, body())

    @bp.post("/completions")
    @handled
    def completions() -> Response:
        return create_completion(services, body())

    @bp.post("/responses")
    @handled
    def responses() -> Response:
        return create_response(services, body(), store, conversation_store, runs)

    @bp.post("/responses/input_tokens")
    @handled
    def response_input_tokens() -> Response:
        return json_response(count_input_tokens(services, body(), store, conversation_store))

    @bp.get("/responses/<response_id>")
    @handled
    def retrieve_response(response_id: str) -> Response:
        query = request.args.to_dict()
        if (Fields(query).string("stream") or "").lower() in ("true", "1"):
            run = stored_responses.followed(runs, response_id)
            after = stored_responses.starting_after(query)
            return sse_response(followed_frames(run, after), lambda: None, end=None)
        return json_response(stored_responses.retrieve(store, runs, response_id))

    @bp.delete("/responses/<response_id>")
    @handled
    def delete_response(response_id: str) -> Response:
        return json_response(stored_responses.delete(store, runs, response_id))

    @bp.post("/responses/<response_id>/cancel")
    @handled
    def cancel_response(response_id: str) -> Response:
        return json_response(stored_responses.cancel(store, runs, response_id))

    @bp.get("/responses/<response_id>/input_items")
    @handled
    def response_input_items(response_id: str) -> Response:
        query = request.args.to_dict()
        return json_response(stored_responses.input_items(store, response_id, query))

    if sock is not None:
        connections_budget = ByteBudget()

        @sock.route("/responses", bp=bp)
        def responses_socket(socket: Any) -> None:
            serve_responses_socket(services, socket, store, conversation_store, connections_budget)

        @bp.before_request
        def refused_handshake() -> Response | None:
            if request.endpoint != f"{bp.name}.responses_socket":
                return None
            refusal = handshake_refusal({k.lower(): v for k, v in request.headers.items()})
            if refusal is None:
                return None
            status, message = refusal
            headers = {"Sec-WebSocket-Version": "13"} if status == 426 else {}
            return json_response(error_body(message, status=status), status, headers)

        @bp.errorhandler(OSError)
        def client_left(exc: OSError) -> Response:
            # a client gone in the middle of its handshake: an ordinary departure
            if request.endpoint != f"{bp.name}.responses_socket" or not is_client_gone_error(exc):
                raise exc
            log.info("a WebSocket client left during its handshake (%s)", type(exc).__name__)
            return Response(status=400)

    @bp.post("/conversations")
    @handled
    def create_conversation() -> Response:
        return json_response(conversations.create(conversation_store, body(), store))

    @bp.get("/conversations/<conversation_id>")
    @handled
    def retrieve_conversation(conversation_id: str) -> Response:
        return json_response(conversations.retrieve(conversation_store, conversation_id))

    @bp.post("/conversations/<conversation_id>")
    @handled
    def update_conversation(conversation_id: str) -> Response:
        updated = conversations.update(conversation_store, conversation_id, body())
        return json_response(updated)

    @bp.delete("/conversations/<conversation_id>")
    @handled
    def delete_conversation(conversation_id: str) -> Response:
        return json_response(conversations.delete(conversation_store, conversation_id))

    @bp.post("/conversations/<conversation_id>/items")
    @handled
    def add_conversation_items(conversation_id: str) -> Response:
        added = conversations.add_items(conversation_store, conversation_id, body(), store)
        return json_response(added)

    @bp.get("/conversations/<conversation_id>/items")
    @handled
    def list_conversation_items(conversation_id: str) -> Response:
        query = request.args.to_dict()
        return json_response(conversations.list_items(conversation_store, conversation_id, query))

    @bp.get("/conversations/<conversation_id>/items/<item_id>")
    @handled
    def retrieve_conversation_item(conversation_id: str, item_id: str) -> Response:
        item = conversations.retrieve_item(conversation_store, conversation_id, item_id)
        return json_response(item)

    @bp.delete("/conversations/<conversation_id>/items/<item_id>")
    @handled
    def delete_conversation_item(conversation_id: str, item_id: str) -> Response:
        left = conversations.delete_item(conversation_store, conversation_id, item_id)
        return json_response(left)

    @bp.post("/files")
    @handled
    def upload_file() -> Response:
        return json_response(files.create(uploaded))

    @bp.get("/files")
    @handled
    def list_files() -> Response:
        return json_response(files.listing(uploaded, request.args.to_dict()))

    @bp.get("/files/<file_id>")
    @handled
    def retrieve_file(file_id: str) -> Response:
        return json_response(files.retrieve(uploaded, file_id))

    @bp.delete("/files/<file_id>")
    @handled
    def delete_file(file_id: str) -> Response:
        return json_response(files.delete(uploaded, file_id))

    @bp.get("/files/<file_id>/content")
    @handled
    def file_content(file_id: str) -> Response:
        return files.content(uploaded, file_id)

    @bp.post("/batches")
    @handled
    def create_batch() -> Response:
        return json_response(batches.create(batch_runs, body()))

    @bp.get("/batches")
    @handled
    def list_batches() -> Response:
        return json_response(batches.listing(batch_runs, request.args.to_dict()))

    @bp.get("/batches/<batch_id>")
    @handled
    def retrieve_batch(batch_id: str) -> Response:
        return json_response(batch_runs.store.get(batch_id))

    @bp.post("/batches/<batch_id>/cancel")
    @handled
    def cancel_batch(batch_id: str) -> Response:
        return json_response(batch_runs.cancel(batch_id))

    @bp.post("/embeddings")
    @handled
    def embeddings() -> Response:
        return json_response(create_embeddings(services, body()))

    @bp.get("/models")
    @handled
    def models() -> Response:
        return json_response(list_models(services))

    @bp.get("/models/<path:model_id>")
    @handled
    def model(model_id: str) -> Response:
        return json_response(retrieve_model(services, model_id))

    @bp.delete("/models/<path:model_id>")
    @handled
    def remove_model(model_id: str) -> Response:
        return json_response(delete_model(services, model_id))

    @bp.route("/<path:rest>", methods=_ANY_METHOD)
    def unknown(rest: str) -> Response:
        # a known path with the wrong method is 405; anything else under /v1 is 404
        allowed = allowed_methods(rest)
        if allowed is not None:
            return http_error_response(MethodNotAllowed(valid_methods=list(allowed)))
        return http_error_response(NotFound(f"Invalid URL ({request.method} {URL_PREFIX}/{rest})"))

    @bp.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        # bad requests, oversized bodies (413) and the like, raised inside these routes
        return http_error_response(exc)

    return bp

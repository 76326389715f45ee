"""The ``/v1/messages`` blueprint: routes and error handlers in Anthropic's shape (a refused
key included; the core checks keys, :mod:`power_core.server.auth`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from power_api_anthropic import URL_PREFIX
from power_api_anthropic.errors import (
    auth_error_response,
    http_error_response,
    power_error_response,
)
from power_api_anthropic.messages import count_tokens, create_message
from power_api_anthropic.models import list_models, retrieve_model
from power_core.errors import PowerError, Unauthorized
from power_core.server.json_body import parse_json_object
from power_core.server.views import answering_errors_with, json_response
from power_core.services import PowerServices

_OTHER_METHODS = ["GET", "PUT", "PATCH", "DELETE"]
MODELS_PATH = "/v1/models"


def anthropic_blueprint(services: PowerServices) -> Blueprint:
    """Routes of the Anthropic Messages API on ``services``."""
    bp = Blueprint("anthropic", __name__, url_prefix=URL_PREFIX)

    handled = answering_errors_with(power_error_response)

    def body() -> dict[str, Any]:
        return parse_json_object(request.get_data())

    @bp.before_app_request
    def models_for_anthropic_clients() -> Response | None:
        # /v1/models is the OpenAI surface's too: a client that says it speaks Anthropic's
        # API gets Anthropic's shape (runs after the core's key check, registered first)
        if "anthropic-version" not in request.headers or request.method not in ("GET", "HEAD"):
            return None
        path = request.path.rstrip("/")
        try:
            if path == MODELS_PATH:
                return json_response(list_models(services, request.args.to_dict()))
            if path.startswith(MODELS_PATH + "/"):
                model_id = path.removeprefix(MODELS_PATH + "/")
                return json_response(retrieve_model(services, model_id))
        except PowerError as exc:
            return power_error_response(exc)
        return None

    @bp.errorhandler(Unauthorized)
    def refused_key(_: Unauthorized) -> Response:
        return auth_error_response()

    @bp.post("", strict_slashes=False)
    @handled
    def messages() -> Response:
        return create_message(services, body())

    @bp.post("/count_tokens")
    @handled
    def tokens() -> Response:
        return count_tokens(services, body())

    # the OpenAI surface's catch-all under /v1 would answer other methods in its own shape
    @bp.route("", methods=_OTHER_METHODS, strict_slashes=False)
    @bp.route("/count_tokens", methods=_OTHER_METHODS)
    def wrong_method() -> Response:
        return http_error_response(MethodNotAllowed(valid_methods=["POST"]))

    @bp.route("/<path:rest>", methods=["POST", *_OTHER_METHODS])
    def unknown(rest: str) -> Response:
        # message batches, and anything else under /v1/messages this server does not have
        what = f"{request.method} {URL_PREFIX}/{rest}"
        return http_error_response(NotFound(f"{what} is not served here"))

    @bp.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        # bad requests, oversized bodies (413), a wrong method (405) on these routes
        return http_error_response(exc)

    return bp

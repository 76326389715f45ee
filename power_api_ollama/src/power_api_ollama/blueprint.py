"""The Ollama surface's Flask blueprint: every ``/api`` route Ollama serves."""

from __future__ import annotations

from flask import Blueprint

from power_api_ollama.errors import register_error_handlers
from power_api_ollama.routes_embed import add_embed_routes
from power_api_ollama.routes_generate import add_generate_routes
from power_api_ollama.routes_models import add_model_routes
from power_api_ollama.routes_transfer import add_transfer_routes
from power_core.server.surface import ApiContext


def build_blueprint(context: ApiContext) -> Blueprint:
    """A blueprint serving Ollama's API from the core services in ``context``."""
    blueprint = Blueprint("ollama", __name__)
    register_error_handlers(blueprint)
    services = context.services
    add_generate_routes(blueprint, services)
    add_embed_routes(blueprint, services)
    add_model_routes(blueprint, services)
    add_transfer_routes(blueprint, services)
    return blueprint

"""``POST /api/embed`` and the older ``POST /api/embeddings``."""

from __future__ import annotations

import time

from flask import Blueprint, Response, request

from power_api_ollama.options import parse_options
from power_api_ollama.translate import embed_request
from power_api_ollama.wire import json_response, keep_alive, model_name, opt_str
from power_core.server.disconnect import current_client_gone
from power_core.server.json_body import parse_json_object
from power_core.services import PowerServices
from power_core.types import EmbeddingRequest


def add_embed_routes(blueprint: Blueprint, services: PowerServices) -> None:
    """Register ``/api/embed`` and ``/api/embeddings`` on ``blueprint``."""

    @blueprint.post("/api/embed")
    def embed() -> Response:
        started = time.perf_counter_ns()
        body = parse_json_object(request.get_data())
        embedding = embed_request(body)
        if not embedding.inputs:
            # Ollama: nothing to embed still loads the model and answers no vectors.
            _, load_ns = services.load_model(embedding.model, embedding.keep_alive, embedding.load)
            return json_response(
                {
                    "model": embedding.model,
                    "embeddings": [],
                    "total_duration": time.perf_counter_ns() - started,
                    "load_duration": load_ns,
                    "prompt_eval_count": 0,
                }
            )
        embedding.cancelled = current_client_gone()
        result = services.embed(embedding)
        return json_response(
            {
                "model": embedding.model,
                "embeddings": result.vectors,
                "total_duration": int(result.total_ns),
                "load_duration": int(result.load_ns),
                "prompt_eval_count": int(result.prompt_tokens),
            }
        )

    @blueprint.post("/api/embeddings")
    def embeddings() -> Response:
        body = parse_json_object(request.get_data())
        name = model_name(body)
        prompt = opt_str(body, "prompt") or ""
        seconds = keep_alive(body)
        load = parse_options(body.get("options")).load
        if not prompt:
            services.load_model(name, seconds, load)
            return json_response({"embedding": []})
        # Ollama's legacy route gives the pooled vector as is; /api/embed normalises
        embedding = EmbeddingRequest(
            model=name,
            inputs=[prompt],
            keep_alive=seconds,
            load=load,
            normalize=False,
            cancelled=current_client_gone(),
        )
        return json_response({"embedding": services.embed(embedding).vectors[0]})

"""A model's Modelfile parameters that shape its load (``num_ctx``) apply when it loads,
under a request's own options, as in Ollama."""

from __future__ import annotations

import ollama


def loaded_context(client: ollama.Client, name: str) -> int | None:
    for model in client.ps().models:
        if model.model == name:
            return model.context_length
    return None


def test_a_models_num_ctx_is_the_context_it_loads_with(client: ollama.Client) -> None:
    name = "smollm2-ctx1024:test"
    client.create(name, from_="smollm2:135m", parameters={"num_ctx": 1024, "temperature": 0})
    try:
        client.generate(name, "Say hi", options={"num_predict": 2})
        assert loaded_context(client, name) == 1024
        # the request's own option wins over the model's
        client.generate(name, "Say hi", options={"num_predict": 2, "num_ctx": 1536})
        assert loaded_context(client, name) == 1536
        # back to the model's context: a longer prompt is cut to fit it, as Ollama cuts it
        long_prompt = "word " * 1200
        answer = client.generate(name, long_prompt, options={"num_predict": 1})
        assert answer.prompt_eval_count is not None and answer.prompt_eval_count < 1024
    finally:
        client.delete(name)

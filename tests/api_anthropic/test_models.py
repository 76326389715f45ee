"""``/v1/models`` in Anthropic's shape for the ``anthropic`` SDK, OpenAI's for the rest."""

from __future__ import annotations

import anthropic
import ollama
import pytest
import requests

from api_anthropic.conftest import MODEL
from conftest import PowerServer


def test_the_sdk_lists_and_retrieves_models_with_their_context(
    client: anthropic.Anthropic, power_server: PowerServer
) -> None:
    listed = {model.id: model for model in client.models.list()}
    assert MODEL in listed
    model = client.models.retrieve(MODEL)
    assert (model.type, model.id, model.display_name) == ("model", MODEL, MODEL)
    assert model.max_input_tokens == 2048  # the test server's configured context
    assert model.created_at.tzinfo is not None
    # the same path answers OpenAI's clients in OpenAI's shape
    openai_shape = requests.get(power_server.url + "/v1/models", timeout=30).json()
    assert openai_shape["object"] == "list" and "has_more" not in openai_shape


def test_a_models_own_context_and_pages(
    client: anthropic.Anthropic, power_server: PowerServer
) -> None:
    local = ollama.Client(host=power_server.url, timeout=300)
    names = [f"ctx-page-{i}:test" for i in range(3)]
    for name in names:
        local.create(name, from_=MODEL, parameters={"num_ctx": 1024})
    try:
        assert client.models.retrieve(names[0]).max_input_tokens == 1024
        first = client.models.list(limit=2)
        assert len(first.data) == 2 and first.has_more
        assert first.first_id == first.data[0].id and first.last_id == first.data[1].id
        rest = client.models.list(limit=1000, after_id=first.last_id)
        everything = [m.id for m in first.data] + [m.id for m in rest.data]
        assert everything == [m.id for m in client.models.list(limit=1000).data]
        assert set(names) <= set(everything)
        before = client.models.list(limit=1, before_id=first.last_id)
        assert [m.id for m in before.data] == [first.first_id]
    finally:
        for name in names:
            local.delete(name)


def test_unknown_models_and_bad_limits_in_anthropics_shape(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.models.retrieve("absent:1b")
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.models.list(limit=0)
    assert "limit" in refused.value.body["error"]["message"]  # type: ignore[index]

"""A model deleted while it is loaded does not stay in memory: deleting it through the API
unloads it, and one deleted by another process (``a3s-power rm``) can still be stopped by
its name, as ``ollama stop`` stops it."""

from __future__ import annotations

import ollama
import pytest

from conftest import TEST_MODEL_NAME, PowerServer, power_cli

pytestmark = pytest.mark.model


def loaded_names(client: ollama.Client) -> set[str]:
    return {model.model for model in client.ps().models if model.model}


def load_forever(client: ollama.Client, name: str) -> None:
    client.copy(TEST_MODEL_NAME, name)
    client.generate(model=name, prompt="Hi", keep_alive=-1, options={"num_predict": 1})
    assert name in loaded_names(client)


def test_deleting_a_loaded_model_unloads_it(client: ollama.Client) -> None:
    load_forever(client, "victim:api")
    client.delete("victim:api")
    assert "victim:api" not in loaded_names(client)
    assert TEST_MODEL_NAME in {model.model for model in client.list().models}


def test_a_model_deleted_by_another_process_is_stopped_by_its_name(
    client: ollama.Client, power_server: PowerServer
) -> None:
    load_forever(client, "victim:cli")
    power_cli(power_server.env, "rm", "victim:cli")
    assert "victim:cli" in loaded_names(client)  # the server was not told
    power_cli(power_server.env, "stop", "victim:cli")
    assert "victim:cli" not in loaded_names(client)
    with pytest.raises(ollama.ResponseError) as missing:  # neither stored nor loaded now
        client.generate(model="victim:cli", keep_alive=0)
    assert missing.value.status_code == 404

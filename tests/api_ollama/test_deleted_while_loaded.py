"""A model deleted while it is loaded does not stay in memory: deleting it through the API
or with ``a3s-power rm`` unloads it, and one deleted by a process that could not tell the
server can still be stopped by its name, as ``ollama stop`` stops it."""

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


def test_rm_unloads_the_model_from_the_running_server_as_ollama_rm_does(
    client: ollama.Client, power_server: PowerServer
) -> None:
    load_forever(client, "victim:rm")
    removed = power_cli(power_server.env, "rm", "victim:rm")
    assert removed.stdout.strip() == "deleted 'victim:rm'", removed.stderr
    assert "victim:rm" not in loaded_names(client)
    assert TEST_MODEL_NAME in {model.model for model in client.list().models}  # its source stays


def test_a_model_deleted_by_another_process_is_stopped_by_its_name(
    client: ollama.Client, power_server: PowerServer
) -> None:
    load_forever(client, "victim:cli")
    # deleted by a process that reaches no server (another port): the server is not told
    elsewhere = dict(power_server.env, A3S_POWER_PORT="1")
    power_cli(elsewhere, "rm", "victim:cli")
    assert "victim:cli" in loaded_names(client)
    power_cli(power_server.env, "stop", "victim:cli")
    assert "victim:cli" not in loaded_names(client)
    with pytest.raises(ollama.ResponseError) as missing:  # neither stored nor loaded now
        client.generate(model="victim:cli", keep_alive=0)
    assert missing.value.status_code == 404


def test_a_delete_does_not_wait_for_the_models_running_stream(client: ollama.Client) -> None:
    """Answered at once, as Ollama answers it; the stream goes on, and the model goes when
    the stream ends."""
    client.copy(TEST_MODEL_NAME, "victim:busy")
    stream = client.generate(
        model="victim:busy",
        prompt="Tell me a long story.",
        stream=True,
        options={"num_predict": 300, "temperature": 0, "stop": []},
    )
    pieces = iter(stream)
    assert next(pieces).response is not None  # streaming now
    client.delete("victim:busy")
    # answered while the stream still runs: the model is still loaded (it would be gone
    # had the delete waited for the stream's end)
    assert "victim:busy" in loaded_names(client)
    rest = list(pieces)  # the stream was not cut short by the delete
    assert rest and rest[-1].done and (rest[-1].eval_count or 0) > 1
    assert "victim:busy" not in loaded_names(client)

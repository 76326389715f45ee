"""LoRA adapters through the official client on the real SmolLM2: an uploaded adapter
changes what the model writes and embeds, one that changes nothing leaves both as they were,
and one made for another model, or one llama.cpp would abort on, is a 400 that stores
nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import ollama
import pytest
import requests

from conftest import TEST_MODEL_NAME, PowerServer
from lora_files import write_lora
from power_core.names import ModelRef
from power_core.store.local import LocalStore
from power_core.store.manifest import Layer, layer_media_type

pytestmark = pytest.mark.model

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0, "num_predict": 16}
TARGETS = ("attn_q.weight", "attn_v.weight")


@pytest.fixture(scope="module")
def adapted(
    client: ollama.Client, model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Models on SmolLM2: ``random`` (an adapter of random values), ``zero`` (an adapter of
    zeros), each uploaded as a blob and added with ``adapters``."""
    folder = tmp_path_factory.mktemp("adapters")
    names = {}
    for kind, scale in (("random", 0.1), ("zero", 0.0)):
        lora = write_lora(folder / f"{kind}.gguf", model_path, targets=TARGETS, scale=scale)
        digest = client.create_blob(lora)
        name = f"adapted-{kind}:latest"
        client.create(model=name, from_=TEST_MODEL_NAME, adapters={f"{kind}.gguf": digest})
        names[kind] = name
    yield names
    for name in names.values():
        client.delete(name)


def answer(client: ollama.Client, model: str) -> str:
    return client.chat(model=model, messages=QUESTION, options=GREEDY).message.content or ""


def test_an_adapter_changes_the_answer_and_one_of_zeros_does_not(
    client: ollama.Client, adapted: dict[str, str]
) -> None:
    base = answer(client, TEST_MODEL_NAME)
    assert answer(client, adapted["zero"]) == base
    changed = answer(client, adapted["random"])
    assert changed and changed != base


def test_an_adapter_changes_embeddings_too(client: ollama.Client, adapted: dict[str, str]) -> None:
    def vector(model: str) -> list[float]:
        return list(client.embed(model=model, input="hello").embeddings[0])

    base = vector(TEST_MODEL_NAME)
    assert vector(adapted["zero"]) == pytest.approx(base, abs=1e-6)
    changed = vector(adapted["random"])
    assert max(abs(a - b) for a, b in zip(changed, base, strict=True)) > 1e-3


def test_show_lists_the_adapter_and_a_legacy_modelfile_may_name_it_by_digest(
    client: ollama.Client, url: str, adapted: dict[str, str]
) -> None:
    modelfile = client.show(adapted["random"]).modelfile or ""
    adapter_lines = [line for line in modelfile.splitlines() if line.startswith("ADAPTER ")]
    assert len(adapter_lines) == 1
    blob = Path(adapter_lines[0].removeprefix("ADAPTER "))
    digest = "sha256:" + blob.name.removeprefix("sha256-")
    response = requests.post(
        url + "/api/create",
        json={
            "model": "legacy-adapted",
            "modelfile": f"FROM {TEST_MODEL_NAME}\nADAPTER @{digest}\n",
            "stream": False,
        },
        timeout=120,
    )
    assert response.status_code == 200, response.text
    try:
        assert answer(client, "legacy-adapted") == answer(client, adapted["random"])
    finally:
        client.delete("legacy-adapted")


def test_an_adapter_for_another_model_is_a_400_that_stores_nothing(
    client: ollama.Client, power_server: PowerServer, model_path: Path, tmp_path: Path
) -> None:
    # the shape of a model with a wider attention: the right names, the wrong sizes
    lora = write_lora(
        tmp_path / "other.gguf",
        model_path,
        targets=("attn_q.weight",),
        shapes={"blk.0.attn_q.weight": (576, 960)},
    )
    digest = client.create_blob(lora)
    with pytest.raises(ollama.ResponseError) as refused:
        client.create(model="misfit", from_=TEST_MODEL_NAME, adapters={"other.gguf": digest})
    assert refused.value.status_code == 400
    assert "'blk.0.attn_q.weight' shaped [576, 4] x [4, 960]" in refused.value.error
    assert "does not fit the model's [576, 576]" in refused.value.error
    assert "misfit:latest" not in [m.model for m in client.list().models]


def test_an_adapter_of_embeddings_shared_with_the_output_is_a_400_not_an_abort(
    client: ollama.Client, model_path: Path, tmp_path: Path
) -> None:
    # SmolLM2's output layer is its token embeddings: llama.cpp would multiply the output by
    # the embeddings' pair the wrong way round and abort the whole server
    lora = write_lora(tmp_path / "embeddings.gguf", model_path, targets=("token_embd.weight",))
    digest = client.create_blob(lora)
    with pytest.raises(ollama.ResponseError) as refused:
        client.create(model="tied", from_=TEST_MODEL_NAME, adapters={"e.gguf": digest})
    assert refused.value.status_code == 400
    assert "shares with its output layer" in refused.value.error
    assert answer(client, TEST_MODEL_NAME)  # the server is still there


def test_a_stored_adapter_llama_cpp_would_abort_on_fails_its_load_and_nothing_else(
    client: ollama.Client, power_server: PowerServer, model_path: Path, tmp_path: Path
) -> None:
    # a model made elsewhere (by Ollama, in a store it shares) was never checked by create
    store = LocalStore(power_server.home / "models")
    lora = write_lora(tmp_path / "embeddings.gguf", model_path, targets=("token_embd.weight",))
    adapter = store.put_blob_file(lora)
    base = store.read_manifest(ModelRef.parse(TEST_MODEL_NAME))
    assert base is not None
    layer = Layer(layer_media_type("adapter"), adapter.digest, adapter.size)
    layers = [*base.manifest.layers, layer]
    store.write_manifest(ModelRef.parse("smuggled"), replace(base.manifest, layers=layers))
    try:
        with pytest.raises(ollama.ResponseError) as refused:
            client.generate(model="smuggled", prompt="Hi", options=GREEDY)
        assert refused.value.status_code == 500
        assert refused.value.error.startswith("cannot load 'smuggled:latest': adapter 'sha256-")
        assert "shares with its output layer" in refused.value.error
        assert answer(client, TEST_MODEL_NAME)  # the server is still there
    finally:
        client.delete("smuggled")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"from": TEST_MODEL_NAME, "adapters": "a.gguf"}, "'adapters' must be an object"),
        (
            {"from": TEST_MODEL_NAME, "adapters": {"a.gguf": 5}},
            "'adapters' must map file names to blob digests (strings); 'a.gguf' does not",
        ),
        (
            {"modelfile": f"FROM {TEST_MODEL_NAME}\nADAPTER ./a.gguf"},
            "ADAPTER a file path is not supported over the API: upload the file to "
            "/api/blobs/<digest> and create with 'adapters'",
        ),
    ],
)
def test_adapters_the_api_cannot_take_are_400s(
    url: str, body: dict[str, object], message: str
) -> None:
    response = requests.post(url + "/api/create", json={"model": "x", **body}, timeout=30)
    assert response.status_code == 400
    assert message in response.json()["error"]

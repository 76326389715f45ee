"""GGUF files whose header holds a value llama.cpp answers with ``abort()`` (a damaged or
hostile file): refused with a 400 that says what is wrong, at create or at the load of a
model that came in another way (a registry), and the server, which runs llama.cpp in its
own process, lives on to serve every other model. Each of these files kills a plain
llama-cpp-python process (exit by SIGABRT; checked by hand, see model_checks.py)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import ollama
import pytest
import requests

from conftest import TEST_MODEL_NAME
from gguf_edits import copy_with_a_token_twice, edited_copy
from registry_server import RegistryServer
from tiny_projector import tiny_png, write_tiny_projector

pytestmark = pytest.mark.model

QUESTION = [{"role": "user", "content": "Hi"}]
ONE_TOKEN = {"temperature": 0, "num_predict": 1}


def refused_create(url: str, files: dict[str, Path]) -> str:
    """The error of ``/api/create`` with these files uploaded as blobs, as Ollama's clients
    create (a 400)."""
    digests = {}
    for filename, path in files.items():
        digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        with path.open("rb") as body:
            requests.post(f"{url}/api/blobs/{digest}", data=body, timeout=120).raise_for_status()
        digests[filename] = digest
    body = {"model": "hostile:create", "files": digests, "stream": False}
    answer = requests.post(f"{url}/api/create", json=body, timeout=120)
    assert answer.status_code == 400, answer.text
    error: str = answer.json()["error"]
    return error


def still_serving(client: ollama.Client) -> None:
    assert client.chat(model=TEST_MODEL_NAME, messages=QUESTION, options=ONE_TOKEN).message


@pytest.mark.parametrize(
    ("key", "value", "refusal"),
    [
        ("llama.block_count", 1000, "llama.block_count is 1000; llama.cpp loads 1 to 512"),
        ("llama.attention.layer_norm_rms_epsilon", math.nan, "is nan; it must be a finite"),
    ],
    ids=["blocks", "epsilon"],
)
def test_weights_llama_cpp_would_abort_on_are_refused_at_create_and_at_load(
    client: ollama.Client,
    url: str,
    model_path: Path,
    tmp_path: Path,
    key: str,
    value: float,
    refusal: str,
) -> None:
    hostile = edited_copy(model_path, tmp_path / "hostile.gguf", key, value)
    assert refusal in refused_create(url, {"model.gguf": hostile})
    # pulled from a registry, the file never went through a create: refused at its load
    registry = RegistryServer()
    try:
        registry.add_model("hostile", "v1", hostile.read_bytes())
        name = registry.name("hostile", "v1")
        client.pull(name)
    finally:
        registry.close()
    with pytest.raises(ollama.ResponseError, match=f"cannot load '{name}': .*{refusal}") as refused:
        client.chat(model=name, messages=QUESTION, options=ONE_TOKEN)
    assert refused.value.status_code == 400
    still_serving(client)
    client.delete(name)


def test_a_vocabulary_with_a_token_twice_is_refused(
    client: ollama.Client, url: str, model_path: Path, tmp_path: Path
) -> None:
    hostile, token = copy_with_a_token_twice(model_path, tmp_path / "twice.gguf")
    assert f"holds the token {token!r} more than once" in refused_create(
        url, {"model.gguf": hostile}
    )
    still_serving(client)


def test_a_projector_without_pixels_leaves_the_model_reading_text(
    client: ollama.Client, url: str, model_path: Path, tmp_path: Path
) -> None:
    """Refused at create; pulled from a registry, the model loads without it (as for any
    projector it cannot use) instead of aborting at the projector's first encode."""
    projector = write_tiny_projector(tmp_path / "mmproj.gguf")
    blind_path = edited_copy(projector, tmp_path / "blind.gguf", "clip.vision.image_size", 0)
    blind = blind_path.read_bytes()
    error = refused_create(url, {"model.gguf": model_path, "mmproj.gguf": blind_path})
    assert "clip.vision.image_size is 0" in error
    registry = RegistryServer()
    try:
        registry.add_model("blind", "v1", model_path.read_bytes(), {"projector": blind})
        name = registry.name("blind", "v1")
        client.pull(name)
    finally:
        registry.close()
    answer = client.chat(model=name, messages=QUESTION, options=ONE_TOKEN)
    assert answer.message.content is not None
    with_image = [{"role": "user", "content": "What is this?", "images": [tiny_png(1)]}]
    with pytest.raises(ollama.ResponseError) as refused:
        client.chat(model=name, messages=with_image, options=ONE_TOKEN)
    assert refused.value.status_code == 400
    client.delete(name)
    still_serving(client)


def test_a_file_llama_cpp_refuses_is_a_400_with_its_reason_in_each_shape(
    client: ollama.Client, url: str, model_path: Path, tmp_path: Path
) -> None:
    """No header value here makes llama.cpp abort, but its tensors do not fit its header:
    llama.cpp refuses the file at load. That is the model's fault, not the server's."""
    headless = edited_copy(model_path, tmp_path / "headless.gguf", "llama.attention.head_count", 0)
    digest = "sha256:" + hashlib.sha256(headless.read_bytes()).hexdigest()
    with headless.open("rb") as body:
        requests.post(f"{url}/api/blobs/{digest}", data=body, timeout=120).raise_for_status()
    body = {"model": "headless:v1", "files": {"m.gguf": digest}, "stream": False}
    requests.post(f"{url}/api/create", json=body, timeout=120).raise_for_status()
    with pytest.raises(ollama.ResponseError, match="check_tensor_dims") as refused:
        client.chat(model="headless:v1", messages=QUESTION, options=ONE_TOKEN)
    assert refused.value.status_code == 400
    assert "/blobs/" not in str(refused.value)  # the server's files are not named
    answer = requests.post(
        f"{url}/v1/chat/completions",
        json={"model": "headless:v1", "messages": QUESTION, "max_tokens": 1},
        timeout=120,
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    client.delete("headless:v1")
    still_serving(client)

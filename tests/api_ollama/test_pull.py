"""``/api/pull`` of a GGUF by URL, from a local threaded HTTP server, with the official client."""

from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path
from typing import Any

import ollama
import pytest
import requests

from conftest import TEST_MODEL_NAME, PowerServer, power_cli, real_model_path
from power_core.config import Settings
from power_core.plugins import get_registry
from power_core.stores import open_library
from registry_server import (
    DOCKER_GGUF,
    DOCKER_LICENSE,
    DOCKER_TEMPLATE,
    RegistryServer,
    TokenService,
)
from split_files import split_copy


def test_pull_by_url_streams_ollama_progress(
    client: ollama.Client, gguf_server: Any, real_gguf_copy: Path
) -> None:
    shutil.copyfile(real_gguf_copy, gguf_server.folder / real_gguf_copy.name)
    progress = list(client.pull(gguf_server.url(real_gguf_copy.name), stream=True))
    statuses = [p.status for p in progress]
    assert statuses[0] == "pulling manifest"
    assert statuses[-1] == "success"
    assert statuses.index("verifying sha256 digest") < statuses.index("writing manifest")
    downloads = [
        p
        for p in progress
        if p.status and p.status.startswith("pulling ") and p.status != "pulling manifest"
    ]
    assert downloads
    size = real_gguf_copy.stat().st_size
    assert all(p.total == size for p in downloads)
    assert downloads[-1].completed == size
    assert [p.completed for p in downloads] == sorted(p.completed or 0 for p in downloads)

    names = {m.model for m in client.list().models}
    assert "ollama-pull-test:q4_1" in names
    shown = client.show("ollama-pull-test:q4_1")
    assert shown.details and shown.details.quantization_level == "Q4_1"

    again = client.pull(gguf_server.url(real_gguf_copy.name))  # stream=False: one answer
    assert isinstance(again, ollama.ProgressResponse) and again.status == "success"
    client.delete("ollama-pull-test:q4_1")


def test_two_clients_pulling_the_same_url_share_one_download(
    url: str, gguf_server: Any, tiny_gguf: Path
) -> None:
    name = "ollama-shared.gguf"
    shutil.copyfile(tiny_gguf, gguf_server.folder / name)
    gguf_server.hold(name)
    target = gguf_server.url(name)
    first = requests.post(url + "/api/pull", json={"model": target}, stream=True, timeout=120)
    first_lines = first.iter_lines()
    # wait until the first pull is downloading (the file server holds the body back)
    assert b'"pulling manifest"' in next(first_lines)
    assert b'"pulling ' in next(first_lines)

    second = requests.post(url + "/api/pull", json={"model": target}, stream=True, timeout=120)
    second_lines = second.iter_lines()
    assert b'"pulling manifest"' in next(second_lines)
    joined = next(second_lines)  # the shared download's latest report
    assert b'"pulling ' in joined and b"manifest" not in joined

    results: dict[str, list[bytes]] = {}

    def drain(key: str, lines: Any) -> None:
        results[key] = list(lines)

    threads = [
        threading.Thread(target=drain, args=(k, v))
        for k, v in (("first", first_lines), ("second", second_lines))
    ]
    for thread in threads:
        thread.start()
    gguf_server.release()
    for thread in threads:
        thread.join(120)
    assert results["first"][-1] == b'{"status":"success"}'
    assert results["second"][-1] == b'{"status":"success"}'
    assert gguf_server.gets["/" + name] == 1
    requests.delete(url + "/api/delete", json={"model": "ollama-shared:latest"}, timeout=30)


@pytest.mark.parametrize(
    ("reference", "status", "needle"),
    [
        ("127.0.0.1:9/library/none", 502, "cannot pull"),  # a registry nobody runs
        ("ftp://example.com/model.gguf", 400, "source"),
    ],
)
def test_pull_refusals_have_status_codes(
    url: str, reference: str, status: int, needle: str
) -> None:
    # stream: false answers once, so a failure found after "pulling manifest" still gets
    # its status code (streamed, it is an error line after a 200)
    response = requests.post(
        url + "/api/pull", json={"model": reference, "stream": False}, timeout=30
    )
    assert response.status_code == status
    assert needle in response.json()["error"]


def test_failed_download_is_an_error_line(url: str, gguf_server: Any) -> None:
    response = requests.post(
        url + "/api/pull", json={"model": gguf_server.url("missing.gguf")}, stream=True, timeout=60
    )
    assert response.status_code == 200  # the stream began before the download failed
    lines = [line for line in response.iter_lines() if line]
    assert b"error" in lines[-1] and b"404" in lines[-1]

    single = requests.post(
        url + "/api/pull",
        timeout=60,
        json={"model": gguf_server.url("missing.gguf"), "stream": False},
    )
    assert single.status_code == 502
    assert "404" in single.json()["error"]


def test_pull_by_name_from_a_registry_then_chat(
    client: ollama.Client, real_gguf_copy: Path
) -> None:
    registry = RegistryServer()
    try:
        params = b'{"stop":["<|im_end|>"],"num_ctx":2048}'
        registry.add_model("smollm2", "135m", real_gguf_copy.read_bytes(), {"params": params})
        name = registry.name("smollm2", "135m")
        progress = list(client.pull(name, stream=True))
        assert [p.status for p in progress][-2:] == ["writing manifest", "success"]
        assert name in {m.model for m in client.list().models}
        shown = client.show(name)
        assert shown.parameters is not None and "num_ctx" in shown.parameters
        answer = client.chat(
            model=name,
            messages=[{"role": "user", "content": "Say hi"}],
            options={"temperature": 0, "num_predict": 4},
        )
        assert answer.message.content
    finally:
        registry.close()
    client.delete(name)


#: ChatML without the default system prompt SmolLM2's own template adds
PLAIN_CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def test_a_docker_model_artifact_pulls_then_chats_with_its_template_and_context(
    client: ollama.Client, real_gguf_copy: Path
) -> None:
    """What ``docker model package --gguf ... --license ... --chat-template ...
    --context-size 1024`` pushes, pulled by name as from Docker Hub's ``ai/``."""
    registry = RegistryServer()
    try:
        registry.add_docker_model(
            "smollm2",
            "135M-Q4_1",
            [
                (DOCKER_GGUF, real_gguf_copy.read_bytes()),
                (DOCKER_LICENSE, b"Apache-2.0"),
                (DOCKER_TEMPLATE, PLAIN_CHATML.encode()),
            ],
            context_size=1024,
        )
        progress = list(client.pull(registry.name("smollm2", "135M-Q4_1", "ai"), stream=True))
        assert [p.status for p in progress][-1] == "success"
        name = f"{registry.host}/ai/smollm2:135m-q4_1"
        shown = client.show(name)
        assert shown.template == PLAIN_CHATML
        assert shown.license == "Apache-2.0"
        assert shown.parameters is not None and "num_ctx" in shown.parameters
        question = [{"role": "user", "content": "Say hi"}]
        options = {"temperature": 0, "num_predict": 4}
        pulled = client.chat(model=name, messages=question, options=options)
        assert pulled.message.content
        # the artifact's template, not the GGUF's, shaped the prompt: no default system
        # prompt, so fewer prompt tokens than the same weights imported as they are
        own = client.chat(model="smollm2:135m", messages=question, options=options)
        assert (pulled.prompt_eval_count or 0) < (own.prompt_eval_count or 0)
        loaded = {m.model: m for m in client.ps().models}
        assert loaded[name].context_length == 1024
    finally:
        registry.close()
    client.delete(name)


def test_push_uploads_to_a_registry_with_ollama_progress(client: ollama.Client, url: str) -> None:
    registry = RegistryServer()
    name = registry.name("smollm2", "135m", namespace="me")
    try:
        client.copy("smollm2:135m", name)
        progress = list(client.push(name, stream=True))
        statuses = [p.status for p in progress]
        assert statuses[0] == "retrieving manifest"
        assert statuses[-2:] == ["pushing manifest", "success"]
        weights = [p for p in progress if p.total and p.total > 50_000_000]
        assert weights[-1].completed == weights[-1].total  # the 98 MB GGUF went out
        assert ("me", "smollm2", "135m") in registry.manifests

        registry.refuse_uploads = True  # as a registry that wants signing in
        again = registry.name("smollm2", "other", namespace="me")
        client.create(again, from_=name, system="A new layer to upload.")
        with pytest.raises(ollama.ResponseError, match="HTTP 401") as refused:
            client.push(again)
        assert refused.value.status_code == 502
        lines = requests.post(url + "/api/push", json={"model": again}, stream=True, timeout=60)
        assert lines.status_code == 200  # the refusal comes after the first progress line
        assert "wants a signed-in key" in lines.text.splitlines()[-1]
        with pytest.raises(ollama.ResponseError, match="not found") as missing:
            client.push(registry.name("absent", "1"))
        assert missing.value.status_code == 404
        # streamed too: the name is looked up before the first progress line
        absent = requests.post(
            url + "/api/push", json={"model": registry.name("absent", "1")}, timeout=60
        )
        assert absent.status_code == 404, absent.text
        assert absent.json() == {"error": f"model '{registry.name('absent', '1')}' not found"}
        invalid = requests.post(url + "/api/push", json={"model": "../evil"}, timeout=60)
        assert invalid.status_code == 400 and "invalid model name" in invalid.json()["error"]
    finally:
        registry.close()
    client.delete(name)
    client.delete(again)


def test_insecure_pulls_reach_a_plain_http_registry(client: ollama.Client, tiny_gguf: Path) -> None:
    lan = RegistryServer("127.0.0.2")  # not localhost: HTTPS unless insecure
    try:
        lan.add_model("tiny", "1b", tiny_gguf.read_bytes())
        name = lan.name("tiny", "1b")
        with pytest.raises(ollama.ResponseError, match="cannot pull"):
            client.pull(name)
        assert client.pull(name, insecure=True).status == "success"
        assert name in {m.model for m in client.list().models}
    finally:
        lan.close()
    client.delete(name)


def test_the_server_signs_in_with_the_key_the_cli_shows(
    client: ollama.Client, power_server: PowerServer, tiny_gguf: Path
) -> None:
    # the key `a3s-power key` shows is the one the server signs its token requests with
    shown = power_cli(power_server.env, "key").stdout.strip()
    assert shown.startswith("ssh-ed25519 ")
    registry = RegistryServer()
    registry.require_token = TokenService()
    registry.add_model("tiny", "1b", tiny_gguf.read_bytes())
    pushed = registry.name("tiny", "copy", namespace="me")
    try:
        with pytest.raises(ollama.ResponseError, match="a3s-power key") as refused:
            client.pull(registry.name("tiny", "1b"))
        assert refused.value.status_code == 502

        registry.require_token.known_keys.add(shown.split()[1])
        assert client.pull(registry.name("tiny", "1b")).status == "success"
        client.copy(registry.name("tiny", "1b"), pushed)
        assert client.push(pushed).status == "success"
        assert ("me", "tiny", "copy") in registry.manifests
        signed = [auth for _, auth in registry.require_token.requests]
        assert signed and all(auth.startswith(shown.split()[1] + ":") for auth in signed)
    finally:
        registry.close()
    client.delete(registry.name("tiny", "1b"))
    client.delete(pushed)


@pytest.mark.parametrize(
    "reference",
    ["http://", "http://a b/model.gguf", "http://127.0.0.1:99999/model.gguf", "https:///x.gguf"],
)
def test_a_url_that_cannot_be_sent_is_the_clients_mistake(url: str, reference: str) -> None:
    for stream in (False, True):  # refused before the first progress line
        answer = requests.post(
            url + "/api/pull", json={"model": reference, "stream": stream}, timeout=60
        )
        assert answer.status_code == 400, answer.text
        assert "not a valid URL" in answer.json()["error"]


@pytest.mark.model
def test_a_split_model_pulled_by_url_is_the_file_it_was_cut_from(
    client: ollama.Client, gguf_server: Any, power_server: PowerServer
) -> None:
    # the real model cut in three by the gguf package's writer, served over HTTP
    parts = split_copy(real_model_path(), gguf_server.folder, "SmolLM2-Split.Q4_1", 3)
    progress = list(client.pull(gguf_server.url(parts[0].name), stream=True))
    statuses = [p.status for p in progress]
    assert [f"pulling {part.name}" in statuses for part in parts] == [True] * 3
    joining = [p for p in progress if p.status == "joining 3 parts"]
    assert joining and joining[-1].completed == joining[-1].total
    assert statuses[-1] == "success"

    name = "smollm2-split:q4_1"
    library = open_library(Settings(home=power_server.home), get_registry())
    original = hashlib.sha256(real_model_path().read_bytes()).hexdigest()
    assert library.resolve(name).model_digest == f"sha256:{original}"
    # llama.cpp runs it as the model it was cut from: the same greedy answer
    options = {"temperature": 0, "num_predict": 12, "seed": 1}
    prompt = "Name three colours."
    joined = client.generate(model=name, prompt=prompt, options=options).response
    assert joined
    assert joined == client.generate(model=TEST_MODEL_NAME, prompt=prompt, options=options).response
    client.delete(name)

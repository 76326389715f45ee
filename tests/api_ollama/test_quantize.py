"""``create`` with ``quantize`` on a real server, as Ollama's: an F16 SmolLM2 quantized by
llama.cpp into the store, through the official client, raw HTTP and the CLI."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import ollama
import pytest
import requests

from conftest import ENDLESS_RAW_PROMPT, PowerServer, power_cli, real_model_path, serving_test_model

MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "num_predict": 8}
#: general.file_type of the types these tests ask for
FILE_TYPES = {"Q8_0": 7, "Q4_K_M": 15}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerServer]:
    """A server of its own, so that every file of its store is this module's to count."""
    yield from serving_test_model(tmp_path_factory.mktemp("quantize-home"))


@pytest.fixture(scope="module")
def client(server: PowerServer) -> ollama.Client:
    return ollama.Client(host=server.url, timeout=300)


def _store(server: PowerServer) -> Path:
    return server.home / "models"


def _store_files(server: PowerServer) -> dict[str, set[str]]:
    """The names of the store's blobs, manifests and temp files."""
    store = _store(server)
    return {
        folder: {str(p.relative_to(store / folder)) for p in (store / folder).rglob("*")}
        for folder in ("blobs", "manifests", "tmp")
    }


def _model_blob(server: PowerServer, name: str) -> Path:
    """The file of model ``name``'s weights, as its manifest names it."""
    manifest_path = _store(server) / "manifests/registry.ollama.ai/library" / name.replace(":", "/")
    manifest = json.loads(manifest_path.read_text())
    [layer] = [x for x in manifest["layers"] if x["mediaType"].endswith(".model")]
    return _store(server) / "blobs" / layer["digest"].replace(":", "-")


def _check_quantized(server: PowerServer, name: str, file_type: str, f16: Path) -> None:
    """/api/show says ``file_type``; the stored weights are a smaller GGUF of that type;
    the model still says what SmolLM2 says."""
    shown = requests.post(server.url + "/api/show", json={"model": name}, timeout=30).json()
    assert shown["details"]["quantization_level"] == file_type
    assert shown["details"]["family"] == "llama"
    blob = _model_blob(server, name)
    assert blob.stat().st_size < f16.stat().st_size * 0.6
    reader = gguf.GGUFReader(blob)
    assert reader.fields["general.file_type"].contents() == FILE_TYPES[file_type]
    assert "tokenizer.chat_template" in reader.fields
    kinds = {t.tensor_type.name for t in reader.tensors}
    assert ("Q8_0" if file_type == "Q8_0" else "Q4_K") in kinds
    assert "F16" not in kinds
    generated = requests.post(
        server.url + "/api/generate",
        json={"model": name, "prompt": "The capital of France is", "raw": True, "stream": False}
        | {"options": GREEDY},
        timeout=120,
    )
    assert generated.status_code == 200, generated.text
    assert "Paris" in generated.json()["response"]


def test_create_quantizes_an_uploaded_f16_model(
    server: PowerServer, client: ollama.Client, f16_model_path: Path
) -> None:
    digest = client.create_blob(f16_model_path)
    reports = list(
        client.create(
            model="quantized:q8", files={"model.gguf": digest}, quantize="q8_0", stream=True
        )
    )
    statuses = [r.status for r in reports]
    quantizing = [r for r in reports if r.status == "quantizing F16 model to Q8_0"]
    assert len(quantizing) > 10
    size = f16_model_path.stat().st_size
    assert all(r.total == size for r in quantizing)
    done = [r.completed or 0 for r in quantizing]
    assert done == sorted(done) and done[0] == 0 and done[-1] == size
    after = statuses[statuses.index("verifying conversion") :]
    assert after[1].startswith("creating new layer sha256:")
    assert after[-2:] == ["writing manifest", "success"]
    new_digest = after[1].removeprefix("creating new layer ")
    assert _model_blob(server, "quantized:q8").name == new_digest.replace(":", "-")
    assert new_digest != digest  # the F16 weights are not the model's
    _check_quantized(server, "quantized:q8", "Q8_0", f16_model_path)
    assert _store_files(server)["tmp"] == set()


def test_the_older_quantization_field_and_one_answer(
    server: PowerServer, client: ollama.Client, f16_model_path: Path
) -> None:
    digest = client.create_blob(f16_model_path)
    answer = requests.post(
        server.url + "/api/create",
        json={
            "model": "quantized:q4km",
            "files": {"model.gguf": digest},
            "quantization": "Q4_K_M",
            "system": "You are terse.",
            "stream": False,
        },
        timeout=300,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "success"}
    _check_quantized(server, "quantized:q4km", "Q4_K_M", f16_model_path)
    shown = requests.post(server.url + "/api/show", json={"model": "quantized:q4km"}, timeout=30)
    assert shown.json()["system"] == "You are terse."


def test_the_cli_quantizes_a_modelfiles_f16_file(
    server: PowerServer, f16_model_path: Path, tmp_path: Path
) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {f16_model_path}\nPARAMETER temperature 0.3\n")
    before = _store_files(server)["blobs"]
    result = power_cli(server.env, "create", "quantized:cli", "-f", str(modelfile), "-q", "q4_K_M")
    lines = result.stdout.splitlines()
    assert any(line.startswith("quantizing F16 model to Q4_K_M 100% (") for line in lines)
    assert lines[-2:] == ["writing manifest", "success"]
    assert "transferring model data" not in result.stdout  # the F16 file is never copied in
    _check_quantized(server, "quantized:cli", "Q4_K_M", f16_model_path)
    # the weights may be stored already: quantizing the same file again gives the same bytes
    added = _store_files(server)["blobs"] - before
    blobs = _store(server) / "blobs"
    assert all((blobs / name).stat().st_size < f16_model_path.stat().st_size / 2 for name in added)
    assert _store_files(server)["tmp"] == set()


def _refused(server: PowerServer, body: dict[str, Any], message: str, *, stream: bool) -> None:
    """``body`` gets a 400 carrying ``message`` in Ollama's shape and leaves no file."""
    before = _store_files(server)
    answer = requests.post(server.url + "/api/create", json={**body, "stream": stream}, timeout=120)
    assert answer.status_code == 400, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    error = answer.json()
    assert list(error) == ["error"] and message in error["error"], error
    assert _store_files(server) == before
    listed = requests.get(server.url + "/api/tags", timeout=30).json()["models"]
    assert body["model"] not in {m["name"] for m in listed}


@pytest.mark.parametrize("stream", [True, False])
def test_an_unknown_type_is_refused_with_the_types_there_are(
    server: PowerServer, client: ollama.Client, f16_model_path: Path, stream: bool
) -> None:
    digest = client.create_blob(f16_model_path)
    body = {"model": "quantized:bad", "files": {"m.gguf": digest}, "quantize": "q5_K_M"}
    _refused(
        server,
        body,
        "unsupported quantization type Q5_K_M - supported types are "
        "F32, F16, BF16, Q4_K_S, Q4_K_M, Q8_0",
        stream=stream,
    )


@pytest.mark.parametrize("stream", [True, False])
def test_weights_already_quantized_are_refused(
    server: PowerServer, client: ollama.Client, stream: bool
) -> None:
    digest = client.create_blob(real_model_path())
    message = "quantization is only supported for F16, BF16 and F32 models"
    body = {"model": "quantized:twice", "files": {"m.gguf": digest}, "quantize": "q8_0"}
    _refused(server, body, message, stream=stream)
    body = {"model": "quantized:twice", "from": MODEL, "quantize": "Q4_K_M"}
    _refused(server, body, message, stream=stream)
    with pytest.raises(ollama.ResponseError) as caught:
        client.create(model="quantized:twice", from_=MODEL, quantize="q4_K_M")
    assert caught.value.status_code == 400 and message in caught.value.error


def test_the_server_keeps_answering_while_a_model_is_quantized(
    server: PowerServer, client: ollama.Client, f16_model_path: Path
) -> None:
    # A generation's tokens reach their client from the engine's thread, so only requests
    # that need the server's own thread (here /api/version) show a quantizing that holds it.
    digest = client.create_blob(f16_model_path)
    tokens: list[float] = []
    answers: list[float] = []
    first = threading.Event()
    stop = threading.Event()

    def generate() -> None:
        body = {
            "model": MODEL,
            "prompt": ENDLESS_RAW_PROMPT,
            "raw": True,
            "options": {"temperature": 0, "num_predict": 3000},
        }
        with requests.post(server.url + "/api/generate", json=body, stream=True, timeout=300) as r:
            for _line in r.iter_lines():
                tokens.append(time.monotonic())
                first.set()
                if stop.is_set():
                    return  # closing the response cancels the generation

    def ask_version() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                assert session.get(server.url + "/api/version", timeout=30).ok
                answers.append(time.monotonic())

    threads = [threading.Thread(target=f, daemon=True) for f in (generate, ask_version)]
    for thread in threads:
        thread.start()
    assert first.wait(60)
    reports: list[tuple[float, str]] = []
    body = {"model": "quantized:busy", "files": {"model.gguf": digest}, "quantize": "q4_K_S"}
    try:
        with requests.post(server.url + "/api/create", json=body, stream=True, timeout=300) as r:
            for line in r.iter_lines():
                reports.append((time.monotonic(), json.loads(line)["status"]))
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert reports[-1][1] == "success"
    started = min(t for t, status in reports if status.startswith("quantizing"))
    verified = min(t for t, status in reports if status == "verifying conversion")
    assert len([t for t in answers if started < t < verified]) >= 3, verified - started
    assert len([t for t in tokens if started < t < verified]) >= 3, verified - started
    assert client.show("quantized:busy").details.quantization_level == "Q4_K_S"

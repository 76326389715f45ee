"""Every answer is JSON that strict parsers (JavaScript's, Go's) read, even from a model
whose numbers are broken: NaN is not JSON, and Python's encoder writes it unless told not
to. The model here is SmolLM2 with a negative RoPE base, whose every hidden state is NaN."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from gguf_edits import edited_copy
from power_core.server.views import compact_json

pytestmark = pytest.mark.model


def strict(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in an answer: not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def broken_model(url: str, model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("nan")
    broken = edited_copy(model_path, folder / "nan.gguf", "llama.rope.freq_base", -1.0)
    digest = "sha256:" + hashlib.sha256(broken.read_bytes()).hexdigest()
    with broken.open("rb") as body:
        requests.post(f"{url}/api/blobs/{digest}", data=body, timeout=120).raise_for_status()
    body = {"model": "broken:nan", "files": {"nan.gguf": digest}, "stream": False}
    requests.post(f"{url}/api/create", json=body, timeout=120).raise_for_status()
    return "broken:nan"


def test_embeddings_of_nan_are_null(url: str, broken_model: str) -> None:
    ollama_style = requests.post(
        f"{url}/api/embed", json={"model": broken_model, "input": "hello"}, timeout=120
    )
    vector = strict(ollama_style.text)["embeddings"][0]
    assert vector and all(value is None for value in vector)  # the model gave NaN
    openai_style = requests.post(
        f"{url}/v1/embeddings", json={"model": broken_model, "input": "hello"}, timeout=120
    )
    assert strict(openai_style.text)["data"][0]["embedding"][0] is None


@pytest.mark.parametrize("stream", [False, True])
def test_log_probabilities_of_nan_are_null(url: str, broken_model: str, stream: bool) -> None:
    body = {
        "model": broken_model,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 3,
        "logprobs": True,
        "top_logprobs": 2,
        "stream": stream,
    }
    answer = requests.post(f"{url}/v1/chat/completions", json=body, timeout=120)
    assert answer.status_code == 200
    if stream:
        frames = [line[6:] for line in answer.text.splitlines() if line.startswith("data: {")]
        assert frames
        for frame in frames:
            strict(frame)
    else:
        strict(answer.text)
    native = {**body, "options": {"num_predict": 3}}
    native.pop("max_tokens")
    answer = requests.post(f"{url}/api/chat", json={**native, "stream": False}, timeout=120)
    strict(answer.text)


def test_compact_json_writes_what_json_cannot_hold_as_json_can() -> None:
    payload = {"a": [1.5, float("nan"), float("-inf"), float("inf")], "b": ({"c": 2},)}
    assert compact_json(payload) == '{"a":[1.5,null,-9999.0,null],"b":[{"c":2}]}'
    assert compact_json({"text": "héllo"}) == '{"text":"héllo"}'

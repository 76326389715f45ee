"""Fixtures for the OpenAI surface: the official SDK, raw SSE reads, and a second server
with bearer keys, one sequence and a one-job queue (for auth, busy and disconnect tests)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import pytest
import requests
from conftest import TEST_MODEL_NAME, PowerServer, import_test_model
from openai import OpenAI

MODEL = TEST_MODEL_NAME
KEYS = ("sk-test-one", "sk-test-two")
#: SmolLM2's end-of-generation tokens (<|endoftext|>, <|im_start|>, <|im_end|>): banning
#: them makes a generation run until its token limit
NO_EOS = {"0": -100, "1": -100, "2": -100}


@pytest.fixture(scope="session")
def v1(power_server: PowerServer) -> str:
    """The base URL of the OpenAI surface."""
    return power_server.url + "/v1"


@pytest.fixture(scope="session")
def client(v1: str) -> OpenAI:
    """The official ``openai`` SDK, unchanged, pointed at A3S Power."""
    return OpenAI(base_url=v1, api_key="anything", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerServer]:
    """A server that requires one of :data:`KEYS`, runs one sequence and queues one job."""
    home = tmp_path_factory.mktemp("keyed-home")
    server = PowerServer(
        home,
        api_keys=",".join(KEYS),
        num_parallel="1",
        max_queue="1",
        num_ctx="8192",
        max_body_bytes="4000",
    )
    import_test_model(server.env)
    server.start()
    yield server
    server.stop()


@dataclass
class SseStream:
    """A raw read of an SSE response: every line, the decoded ``data:`` payloads in order."""

    response: requests.Response
    lines: list[str] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    done: bool = False

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [e for e in self.events if isinstance(e, dict)]


def read_sse(response: requests.Response) -> SseStream:
    """Read an SSE body to its end, checking the framing line by line."""
    stream = SseStream(response)
    blank_expected = False
    for raw in response.iter_lines(decode_unicode=True):
        line = raw if isinstance(raw, str) else raw.decode()
        stream.lines.append(line)
        if blank_expected:
            assert line == "", f"a frame must end with a blank line, got {line!r}"
            blank_expected = False
            continue
        if line.startswith(":"):
            blank_expected = True
            continue
        assert line.startswith("data: "), f"unexpected SSE line {line!r}"
        assert not stream.done, "nothing may follow data: [DONE]"
        payload = line[len("data: ") :]
        if payload == "[DONE]":
            stream.done = True
        else:
            stream.events.append(json.loads(payload))
        blank_expected = True
    return stream


def post_sse(url: str, body: dict[str, Any], **kwargs: Any) -> SseStream:
    """POST ``body`` and read the whole event stream."""
    response = requests.post(url, json=body, stream=True, timeout=300, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return read_sse(response)


def assert_error_shape(
    response: requests.Response, status: int, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The response is OpenAI's error object with this status (and param/code if given)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    expected_type = "server_error" if status >= 500 else "invalid_request_error"
    assert error["type"] == expected_type
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return error


TokenId = Callable[[str], int]


@pytest.fixture(scope="session")
def token_id(model_path: Path) -> TokenId:
    """``token_id(text)``: SmolLM2's id of the one token spelling ``text`` (GPT-2 style BPE,
    where a leading space is written ``Ġ``), read from the GGUF's vocabulary."""
    reader = gguf.GGUFReader(str(model_path))
    field = reader.fields["tokenizer.ggml.tokens"]
    ids = {bytes(field.parts[index]).decode("utf-8"): n for n, index in enumerate(field.data)}

    def lookup(text: str) -> int:
        return ids[text.replace(" ", "\u0120")]

    return lookup

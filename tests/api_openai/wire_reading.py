"""Helpers of the OpenAI surface tests: constants, a strict SSE reader, the error shape."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from conftest import TEST_MODEL_NAME

MODEL = TEST_MODEL_NAME
KEYS = ("sk-test-one", "sk-test-two")
#: SmolLM2's end-of-generation tokens (<|endoftext|>, <|im_start|>, <|im_end|>): banning
#: them makes a generation run until its token limit
NO_EOS = {"0": -100, "1": -100, "2": -100}

TokenId = Callable[[str], int]


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

"""Pieces of the surface that a live server cannot reach on demand: the mid-stream error
frame, base64 vectors, bearer parsing and the field readers."""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
from collections.abc import Iterator

import pytest

from api_openai.wire_reading import MODEL
from power_api_openai.chat import chat_chunks, chat_completion
from power_api_openai.chat_request import ChatOptions
from power_api_openai.embeddings import encode_base64
from power_api_openai.envelope import Envelope
from power_api_openai.sse import DONE, PING, event_stream
from power_api_openai.validation import Fields
from power_core.errors import ContextLengthExceeded, InvalidRequest
from power_core.server.auth import bearer_key, key_accepted
from power_core.types import (
    ChoiceDone,
    GenerationDone,
    GenerationRequest,
    PromptProgress,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
)


def _frames_then(error: Exception) -> Iterator[str]:
    yield "data: {}\n\n"
    raise error


def test_an_error_after_streaming_began_is_a_final_error_frame() -> None:
    cancelled: list[bool] = []
    frames = list(
        event_stream(
            _frames_then(ContextLengthExceeded("too long", param="x")),
            lambda: cancelled.append(True),
        )
    )
    assert frames[0] == "data: {}\n\n"
    assert frames[-1].startswith("data: ") and frames[-1].endswith("\n\n")
    assert DONE not in frames
    error = json.loads(frames[-1][len("data: ") :])["error"]
    assert error == {
        "message": "too long",
        "type": "invalid_request_error",
        "param": "x",
        "code": "context_length_exceeded",
    }
    assert cancelled == [True]


def test_a_bug_mid_stream_is_a_server_error_frame_not_a_traceback() -> None:
    frames = list(event_stream(_frames_then(KeyError("oops")), lambda: None))
    error = json.loads(frames[-1][len("data: ") :])["error"]
    assert error["type"] == "server_error"
    assert "oops" not in error["message"]


def test_a_closed_stream_still_cancels() -> None:
    cancelled: list[bool] = []
    stream = event_stream(iter(["data: 1\n\n", "data: 2\n\n"]), lambda: cancelled.append(True))
    assert next(stream) == "data: 1\n\n"
    stream.close()  # what the server does when the client goes away
    assert cancelled == [True]


def test_base64_vectors_are_little_endian_float32() -> None:
    encoded = encode_base64([1.0, -0.5, 0.25])
    assert struct.unpack("<3f", base64.b64decode(encoded)) == (1.0, -0.5, 0.25)


def test_bearer_keys() -> None:
    assert bearer_key("Bearer abc") == "abc"
    assert bearer_key("bearer  abc ") == "abc"
    assert bearer_key("Basic abc") is None
    assert bearer_key(None) is None
    assert key_accepted((), None)
    assert key_accepted((), "Basic whatever")
    assert key_accepted(("k1", "k2"), "Bearer k2")
    assert not key_accepted(("k1",), "Bearer k2")
    assert not key_accepted(("k1",), None)


@pytest.mark.parametrize(
    ("body", "read", "param"),
    [
        ({"t": float("nan")}, lambda f: f.number("t", 0, 2), "t"),
        ({"t": True}, lambda f: f.number("t", 0, 2), "t"),
        ({"n": 1.5}, lambda f: f.integer("n", 1), "n"),
        ({"n": 9}, lambda f: f.n(), "n"),
        ({"stop": [1]}, lambda f: f.stop(), "stop"),
        ({"logit_bias": {"-1": 5}}, lambda f: f.logit_bias(), "logit_bias"),
        ({"logit_bias": {"5": "x"}}, lambda f: f.logit_bias(), "logit_bias.5"),
        ({"s": 1}, lambda f: f.string("s"), "s"),
    ],
)
def test_field_readers_name_the_field(body: dict, read, param: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidRequest) as caught:
        read(Fields(body))
    assert caught.value.param == param


def test_field_readers_accept_good_values() -> None:
    fields = Fields({"n": 2.0, "stop": "END", "logit_bias": {"42": -100}, "t": None})
    assert fields.n() == 2
    assert fields.stop() == ["END"]
    assert fields.logit_bias() == {42: -100.0}
    assert fields.number("t", 0, 2) is None


class _Events:
    """A finished generation's events, standing in for the core's stream as chat input."""

    def __init__(self, n: int, events: list[object]) -> None:
        self.request = GenerationRequest(model=MODEL, n=n)
        self._events = events
        self.cancelled = False

    def __iter__(self) -> Iterator[object]:
        return iter(self._events)

    def cancel(self) -> None:
        self.cancelled = True


THOUGHTFUL = [
    PromptProgress(processed=512, total=600),
    PromptProgress(processed=600, total=600),
    ThinkingDelta(0, "Let me think."),
    TextDelta(0, "Four."),
    ChoiceDone(0, "stop", 5),
    GenerationDone(
        Usage(prompt_tokens=10, cached_tokens=7, completion_tokens=5, reasoning_tokens=3), "stop"
    ),
]


def test_reasoning_is_reported_as_reasoning_content() -> None:
    envelope = Envelope("chatcmpl-x", MODEL, "fp_x")
    options = ChatOptions(stream=False, include_usage=False, logprobs=False)
    reply = chat_completion(_Events(1, THOUGHTFUL), envelope, options)  # type: ignore[arg-type]
    message = reply["choices"][0]["message"]
    assert message == {
        "role": "assistant",
        "content": "Four.",
        "refusal": None,
        "reasoning_content": "Let me think.",
    }
    assert reply["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 7},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }


def test_streamed_reasoning_deltas_and_a_ping_while_reading_the_prompt() -> None:
    envelope = Envelope("chatcmpl-x", MODEL, "fp_x")
    options = ChatOptions(stream=True, include_usage=True, logprobs=False)
    source = _Events(1, THOUGHTFUL)
    frames = list(chat_chunks(source, envelope, options))  # type: ignore[arg-type]
    assert frames[0] == PING  # only while the prompt is unfinished
    chunks = [json.loads(f[len("data: ") :]) for f in frames[1:]]
    deltas = [c["choices"][0]["delta"] if c["choices"] else None for c in chunks]
    assert deltas == [
        {"role": "assistant", "content": "", "refusal": None},
        {"reasoning_content": "Let me think."},
        {"content": "Four."},
        {},
        None,
    ]
    assert chunks[-1]["usage"]["total_tokens"] == 15
    assert source.cancelled


TWO_CALLS = [
    ToolCallEvent(0, 0, ToolCall(name="get_weather", arguments={"city": "Paris"}, id="a")),
    ToolCallEvent(0, 1, ToolCall(name="get_weather", arguments={"city": "Rome"}, id="b")),
    ChoiceDone(0, "tool_calls", 9),
    GenerationDone(Usage(prompt_tokens=10, completion_tokens=9), "tool_calls"),
]


def test_the_deprecated_function_call_answers_one_call_streamed_or_not() -> None:
    # the old API has one call per answer: a second one the model wrote is not sent
    envelope = Envelope("chatcmpl-x", MODEL, "fp_x")
    legacy = {"include_usage": False, "logprobs": False, "legacy_functions": True}
    whole = chat_completion(_Events(1, TWO_CALLS), envelope, ChatOptions(stream=False, **legacy))  # type: ignore[arg-type]
    choice = whole["choices"][0]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"]["function_call"] == {
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    assert "tool_calls" not in choice["message"]
    frames = list(chat_chunks(_Events(1, TWO_CALLS), envelope, ChatOptions(stream=True, **legacy)))  # type: ignore[arg-type]
    deltas = [
        json.loads(f[len("data: ") :])["choices"][0] for f in frames if f.startswith("data: {")
    ]
    calls = [d["delta"]["function_call"] for d in deltas if "function_call" in d["delta"]]
    assert calls[0]["name"] == "get_weather"
    assert "".join(c.get("name", "") for c in calls) == "get_weather"
    assert "".join(c["arguments"] for c in calls) == '{"city": "Paris"}'
    assert deltas[-1]["finish_reason"] == "function_call"


def test_the_plugin_stays_inside_its_walls() -> None:
    # the entry point loads without Flask (the CLI imports it at start-up), and no module
    # of the surface pulls in llama.cpp or the backend
    code = (
        "import sys, importlib, pkgutil, power_api_openai, power_api_openai.plugin\n"
        "assert 'flask' not in sys.modules, 'plugin entry point imported flask'\n"
        "for m in pkgutil.iter_modules(power_api_openai.__path__):\n"
        "    importlib.import_module('power_api_openai.' + m.name)\n"
        "bad = [m for m in sys.modules if m.startswith(('llama_cpp', 'power_backend'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

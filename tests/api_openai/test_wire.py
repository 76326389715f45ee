"""The wire itself, read with ``requests``: SSE framing and order, keep-alives, error shapes."""

from __future__ import annotations

import json

import pytest
import requests

from api_openai.wire_reading import MODEL, assert_error_shape, post_sse

pytestmark = pytest.mark.model

HI = [{"role": "user", "content": "Say hello."}]


def test_chat_stream_framing_and_chunk_order(v1: str) -> None:
    stream = post_sse(
        v1 + "/chat/completions",
        {
            "model": MODEL,
            "messages": HI,
            "temperature": 0,
            "max_tokens": 4,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert stream.done, "the stream ends with data: [DONE]"
    chunks = stream.chunks
    assert len({(c["id"], c["created"], c["model"]) for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["id"].startswith("chatcmpl-") for c in chunks)
    first, *middle, finish, usage = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert all(set(m["choices"][0]["delta"]) == {"content"} for m in middle)
    assert all(m["choices"][0]["finish_reason"] is None for m in [first, *middle])
    assert finish["choices"][0]["delta"] == {}
    assert finish["choices"][0]["finish_reason"] == "length"
    assert usage["choices"] == []
    counts = usage["usage"]
    prompt_tokens = counts["prompt_tokens"]
    assert counts == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 4,
        "total_tokens": prompt_tokens + 4,
        "prompt_tokens_details": {
            "cached_tokens": counts["prompt_tokens_details"]["cached_tokens"]
        },
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert 0 <= counts["prompt_tokens_details"]["cached_tokens"] < prompt_tokens
    assert all(c["usage"] is None for c in chunks[:-1])


def test_chat_stream_without_include_usage_has_no_usage_key(v1: str) -> None:
    stream = post_sse(
        v1 + "/chat/completions",
        {"model": MODEL, "messages": HI, "temperature": 0, "max_tokens": 2, "stream": True},
    )
    assert stream.done
    assert all("usage" not in c for c in stream.chunks)
    assert stream.chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_streamed_tool_call_deltas(v1: str) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    stream = post_sse(
        v1 + "/chat/completions",
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Weather in Rome?"}],
            "tools": [tool],
            "tool_choice": "required",
            "parallel_tool_calls": False,
            "temperature": 0,
            "max_tokens": 40,
            "stream": True,
        },
    )
    deltas = [c["choices"][0]["delta"] for c in stream.chunks]
    # an answer that is only calls opens with no content, as OpenAI's streams open
    assert deltas[0] == {"role": "assistant", "content": None, "refusal": None}
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    head, *fragments = calls
    assert head["index"] == 0 and head["type"] == "function"
    assert head["id"].startswith("call_")
    assert head["function"] == {"name": "get_weather", "arguments": ""}
    assert fragments and all(set(f) == {"index", "function"} for f in fragments)
    arguments = "".join(f["function"]["arguments"] for f in fragments)
    assert json.loads(arguments)["city"]
    assert stream.chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_long_prompt_sends_keep_alive_comments_first(v1: str) -> None:
    # ~700 tokens: read in batches of 512, with progress after each batch
    stream = post_sse(
        v1 + "/completions",
        {
            "model": MODEL,
            "prompt": "hello " * 700,
            "max_tokens": 1,
            "stream": True,
        },
    )
    pings = [i for i, line in enumerate(stream.lines) if line == ": ping"]
    first_data = next(i for i, line in enumerate(stream.lines) if line.startswith("data: "))
    assert pings and pings[0] < first_data
    assert stream.done


def test_completion_stream_framing(v1: str) -> None:
    stream = post_sse(
        v1 + "/completions",
        {
            "model": MODEL,
            "prompt": "Hello",
            "max_tokens": 2,
            "temperature": 0,
            "echo": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert stream.done
    chunks = stream.chunks
    assert chunks[0]["choices"][0]["text"] == "Hello"
    assert all(c["object"] == "text_completion" for c in chunks)
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 2


def test_non_streamed_chat_shape(v1: str) -> None:
    response = requests.post(
        v1 + "/chat/completions",
        json={"model": MODEL, "messages": HI, "max_tokens": 2, "temperature": 0},
        timeout=300,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == [
        "id",
        "object",
        "created",
        "model",
        "system_fingerprint",
        "choices",
        "usage",
    ]
    [choice] = body["choices"]
    assert list(choice) == ["index", "message", "logprobs", "finish_reason"]
    assert choice["message"]["refusal"] is None and choice["logprobs"] is None


# ------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("data", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b"", None),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": "smollm2:135m"}', "messages"),
        (b'{"model": "smollm2:135m", "messages": []}', "messages"),
        (b'{"model": 5, "messages": []}', "model"),
        (b'{"model": "smollm2:135m", "messages": "hi"}', "messages"),
        (b'{"model": "smollm2:135m", "messages": [{"role": "user"}]}', "messages[0].content"),
        (
            b'{"model": "smollm2:135m", "messages": [{"role": "user", "content": 5}]}',
            "messages[0].content",
        ),
        (
            b'{"model": "smollm2:135m", "messages": [{"role": "tool", "content": "x"}]}',
            "messages[0].tool_call_id",
        ),
        (
            b'{"model": "smollm2:135m", "messages": [{"role": "user", "content": "x"}],'
            b' "temperature": "hot"}',
            "temperature",
        ),
        (
            b'{"model": "smollm2:135m", "messages": [{"role": "user", "content": "x"}],'
            b' "stream": "yes"}',
            "stream",
        ),
        (
            b'{"model": "smollm2:135m", "messages": [{"role": "user", "content": "x"}],'
            b' "tools": [{"type": "function", "function": {"name": "bad name"}}]}',
            "tools[0].function.name",
        ),
        (
            # arguments nested past any request body's depth (it used to be a 500)
            b'{"model": "smollm2:135m", "messages": [{"role": "assistant", "tool_calls":'
            b' [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "'
            + b"[" * 10**5
            + b'"}}]}]}',
            "messages[0].tool_calls[0].function.arguments",
        ),
    ],
)
def test_bad_chat_requests_are_400_in_openai_shape(v1: str, data: bytes, param: str | None) -> None:
    response = requests.post(
        v1 + "/chat/completions",
        data=data,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    error = assert_error_shape(response, 400)
    assert error["param"] == param


@pytest.mark.parametrize(
    ("schema", "needle"),
    [
        ({"type": "object", "properties": 5}, "'properties' at # must be an object"),
        (
            {"type": "string", "minLength": "3"},
            "'minLength' at # must be a non-negative whole number",
        ),
        ({"anyOf": [{"$ref": 5}]}, "'$ref' at #/anyOf/0 must be a string"),
    ],
)
def test_a_malformed_json_schema_is_a_400_naming_its_keyword(
    v1: str, schema: dict[str, object], needle: str
) -> None:
    # the schema converter used to answer in Python's words: 'int' object has no attribute
    # 'items', '>' not supported between instances of 'str' and 'int'
    response_format = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    for stream in (False, True):
        response = requests.post(
            v1 + "/chat/completions",
            json={
                "model": MODEL,
                "messages": HI,
                "max_tokens": 2,
                "stream": stream,
                "response_format": response_format,
            },
            timeout=60,
        )
        error = assert_error_shape(response, 400)
        assert needle in error["message"]


def test_unknown_model_is_404_model_not_found(v1: str) -> None:
    response = requests.post(
        v1 + "/chat/completions", json={"model": "ghost:1b", "messages": HI}, timeout=60
    )
    assert_error_shape(response, 404, param="model", code="model_not_found")
    response = requests.get(v1 + "/models/ghost:1b", timeout=60)
    assert_error_shape(response, 404, code="model_not_found")


def test_context_length_exceeded(v1: str) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hello " * 2100}],
        "stream": True,
        "max_tokens": 4,
        "truncate": False,
    }
    response = requests.post(v1 + "/chat/completions", json=body, timeout=120)
    assert_error_shape(response, 400, param="messages", code="context_length_exceeded")
    # by default, as in Ollama's /v1, a message that alone overflows loses its middle
    cut = requests.post(
        v1 + "/chat/completions", json={**body, "stream": False, "truncate": True}, timeout=120
    )
    assert cut.status_code == 200, cut.text
    assert cut.json()["usage"]["prompt_tokens"] < 2048


def test_a_message_that_fits_the_context_is_not_cut_for_the_replys_room(v1: str) -> None:
    # 1,800 tokens fit the 2048 of the test server but not beside a 600-token reply: the
    # message stays whole (the reply gets what is left), as before turns were fitted
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hello " * 1800}],
        "max_tokens": 600,
        "temperature": 0,
    }
    response = requests.post(v1 + "/chat/completions", json=body, timeout=300)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["prompt_tokens"] > 1800


def test_a_conversation_longer_than_the_context_loses_its_oldest_turns(v1: str) -> None:
    # as Ollama's /v1 answers it: 24 exchanges of about 110 tokens outgrow the 2048
    turn = "Tell me more about the history of the lighthouse on the northern cape. " * 8
    messages: list[dict[str, str]] = []
    for number in range(24):
        messages.append({"role": "user", "content": f"{number}: {turn}"})
        messages.append({"role": "assistant", "content": f"Answer {number}: {turn}"})
    messages.append({"role": "user", "content": "Say hi."})
    body = {"model": MODEL, "messages": messages, "max_tokens": 4, "temperature": 0}
    response = requests.post(v1 + "/chat/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    assert 1024 < response.json()["usage"]["prompt_tokens"] < 2048
    # the extension Ollama's native API calls truncate turns it off
    response = requests.post(
        v1 + "/chat/completions", json={**body, "truncate": False}, timeout=120
    )
    assert_error_shape(response, 400, param="messages", code="context_length_exceeded")


def test_wrong_method_and_unknown_path(v1: str) -> None:
    response = requests.get(v1 + "/chat/completions", timeout=60)
    assert_error_shape(response, 405)
    assert response.headers["Allow"] == "POST"
    response = requests.post(v1 + "/models/" + MODEL, timeout=60)
    assert_error_shape(response, 405)
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "DELETE"}
    response = requests.get(v1 + "/no/such/route", timeout=60)
    assert_error_shape(response, 404)
    # methods no route of the server takes reach no blueprint, yet answer in each shape
    for method in ("PROPFIND", "TRACE"):
        response = requests.request(method, v1 + "/chat/completions", timeout=60)
        assert_error_shape(response, 405)
        response = requests.request(method, v1 + "/messages", timeout=60)
        assert response.status_code == 405
        assert response.json()["type"] == "error"  # Anthropic's shape
        assert response.json()["error"]["type"] == "invalid_request_error"
        response = requests.request(method, v1.removesuffix("/v1") + "/api/chat", timeout=60)
        assert response.status_code == 405
        assert isinstance(response.json()["error"], str)  # Ollama's


def test_any_authorization_is_accepted_without_configured_keys(v1: str) -> None:
    response = requests.get(
        v1 + "/models", headers={"Authorization": "Bearer whatever"}, timeout=60
    )
    assert response.status_code == 200
    assert response.json()["object"] == "list"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/chat/completions",
            b'{"model": "smollm2:135m", "max_tokens": 2,'
            b' "messages": [{"role": "user", "content": "a\\ud800b"}]}',
        ),
        ("/completions", b'{"model": "smollm2:135m", "max_tokens": 2, "prompt": "\\udfff"}'),
        ("/responses", b'{"model": "smollm2:135m", "max_output_tokens": 2, "input": "\\ud83d"}'),
        ("/embeddings", b'{"model": "smollm2:135m", "input": "x\\ud800"}'),
    ],
)
def test_half_a_utf16_pair_is_read_as_a_replacement_character(
    v1: str, path: str, body: bytes
) -> None:
    # JSON may escape one half of a surrogate pair alone: it reads as U+FFFD, as Go's JSON
    # decoder (and so Ollama) reads it (it was a 500: no UTF-8 text can hold it)
    response = requests.post(
        v1 + path, data=body, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert response.status_code == 200, response.text

"""``/v1/messages`` through the official ``anthropic`` SDK, unchanged, on the real SmolLM2."""

from __future__ import annotations

import base64
import json
from typing import Any

import anthropic
import jsonschema
import pytest
import requests

from api_anthropic.conftest import MODEL
from conftest import PowerServer

#: this SDK no longer takes sampling fields; older clients send them, and so do these tests
GREEDY: dict[str, Any] = {"extra_body": {"temperature": 0.0, "top_k": 1}}
QUESTION = [{"role": "user", "content": "Name three colors of the rainbow."}]
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def text_of(message: Any) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def test_a_message_is_what_ollama_chat_answers_in_anthropics_shape(
    client: anthropic.Anthropic, power_server: PowerServer
) -> None:
    message = client.messages.create(
        model=MODEL, max_tokens=24, system="Answer briefly.", messages=QUESTION, **GREEDY
    )
    assert message.id.startswith("msg_") and len(message.id) == 28
    assert (message.type, message.role, message.model) == ("message", "assistant", MODEL)
    assert [block.type for block in message.content] == ["text"]
    assert message.stop_reason in ("end_turn", "max_tokens") and message.stop_sequence is None
    # the same conversation through Ollama's /api/chat, greedy: the same words and counts
    ollama = requests.post(
        power_server.url + "/api/chat",
        json={
            "model": MODEL,
            "stream": False,
            "messages": [{"role": "system", "content": "Answer briefly."}, *QUESTION],
            "options": {"temperature": 0, "top_k": 1, "num_predict": 24},
        },
        timeout=300,
    ).json()
    assert text_of(message) == ollama["message"]["content"]
    usage = message.usage
    assert usage.output_tokens == ollama["eval_count"]
    # Ollama's count is the whole prompt; Anthropic's splits off what the cache held
    prompt = usage.input_tokens + (usage.cache_read_input_tokens or 0)
    assert prompt == ollama["prompt_eval_count"] and usage.cache_creation_input_tokens == 0


def test_max_tokens_ends_with_max_tokens(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=3, messages=QUESTION, **GREEDY)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


def test_a_stream_is_anthropics_events_and_adds_up_to_the_whole_message(
    client: anthropic.Anthropic,
) -> None:
    whole = client.messages.create(model=MODEL, max_tokens=20, messages=QUESTION, **GREEDY)
    kinds: list[str] = []
    with client.messages.stream(model=MODEL, max_tokens=20, messages=QUESTION, **GREEDY) as stream:
        for event in stream:
            kinds.append(event.type)
        final = stream.get_final_message()
    assert text_of(final) == text_of(whole) and final.id.startswith("msg_")
    assert final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens
    raw = [k for k in kinds if k not in ("text",)]  # the SDK adds its own "text" events
    assert raw[0] == "message_start"
    assert raw[1] == "content_block_start" and raw[-3:] == [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert set(raw[2:-3]) == {"content_block_delta"}


def test_raw_stream_frames_name_their_events(power_server: PowerServer) -> None:
    response = requests.post(
        power_server.url + "/v1/messages",
        json={"model": MODEL, "max_tokens": 4, "stream": True, "messages": QUESTION, **GREEDY},
        stream=True,
        timeout=300,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    frames = [f for f in response.text.split("\n\n") if f.strip()]
    for frame in frames:
        event, data = frame.split("\n")
        name = event.removeprefix("event: ")
        assert data.startswith("data: ") and f'"type":"{name}"' in data
    assert frames[-1] == 'event: message_stop\ndata: {"type":"message_stop"}'
    assert '"stop_reason":"max_tokens"' in frames[-2] and '"output_tokens":4' in frames[-2]


def test_a_stop_sequence_ends_the_message_and_is_named(client: anthropic.Anthropic) -> None:
    free = text_of(client.messages.create(model=MODEL, max_tokens=24, messages=QUESTION, **GREEDY))
    words = free.split()
    assert len(words) >= 3, free
    stop = words[2]
    message = client.messages.create(
        model=MODEL, max_tokens=24, messages=QUESTION, stop_sequences=[stop, "zzzz"], **GREEDY
    )
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", stop)
    assert text_of(message) == free[: free.index(stop)]
    with client.messages.stream(
        model=MODEL, max_tokens=24, messages=QUESTION, stop_sequences=[stop], **GREEDY
    ) as stream:
        streamed = stream.get_final_message()
    assert (streamed.stop_reason, streamed.stop_sequence) == ("stop_sequence", stop)
    assert text_of(streamed) == text_of(message)


def test_system_blocks_are_the_system_prompt(client: anthropic.Anthropic) -> None:
    as_text = client.messages.create(
        model=MODEL, max_tokens=12, system="Reply in French.", messages=QUESTION, **GREEDY
    )
    as_blocks = client.messages.create(
        model=MODEL,
        max_tokens=12,
        system=[{"type": "text", "text": "Reply in French."}],
        messages=QUESTION,
        **GREEDY,
    )
    plain = client.messages.create(model=MODEL, max_tokens=12, messages=QUESTION, **GREEDY)
    assert text_of(as_text) == text_of(as_blocks) != text_of(plain)


def test_a_forced_tool_is_a_tool_use_block_and_its_result_goes_back(
    client: anthropic.Anthropic,
) -> None:
    question = [{"role": "user", "content": "What is the weather in Paris?"}]
    message = client.messages.create(
        model=MODEL,
        max_tokens=64,
        messages=question,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        **GREEDY,
    )
    assert message.stop_reason == "tool_use"
    calls = [block for block in message.content if block.type == "tool_use"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert calls[0].id.startswith("toolu_") and isinstance(calls[0].input, dict)
    assert isinstance(calls[0].input["city"], str)

    with client.messages.stream(
        model=MODEL,
        max_tokens=64,
        messages=question,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        **GREEDY,
    ) as stream:
        streamed = stream.get_final_message()
    streamed_calls = [block for block in streamed.content if block.type == "tool_use"]
    assert [c.input for c in streamed_calls] == [calls[0].input]  # input_json_delta adds up
    assert streamed.stop_reason == "tool_use"

    answer = client.messages.create(
        model=MODEL,
        max_tokens=16,
        messages=[
            *question,
            {"role": "assistant", "content": message.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": calls[0].id, "content": "18 C, sunny"},
                    {"type": "text", "text": "So?"},
                ],
            },
        ],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "none"},
        **GREEDY,
    )
    assert answer.stop_reason in ("end_turn", "max_tokens") and text_of(answer)


def test_output_config_format_constrains_the_answer_to_the_schema(
    client: anthropic.Anthropic,
) -> None:
    schema = {
        "type": "object",
        "properties": {"colors": {"type": "array", "items": {"type": "string"}, "maxItems": 3}},
        "required": ["colors"],
        "additionalProperties": False,
    }
    message = client.messages.create(
        model=MODEL,
        max_tokens=64,
        messages=QUESTION,
        output_config={"format": {"type": "json_schema", "schema": schema}, "effort": "low"},
        **GREEDY,
    )
    answer = json.loads(text_of(message))
    jsonschema.validate(answer, schema)
    assert answer["colors"]
    free = client.messages.create(model=MODEL, max_tokens=64, messages=QUESTION, **GREEDY)
    with pytest.raises(ValueError):  # without it, SmolLM2 answers in prose
        json.loads(text_of(free))


def test_a_failed_tool_and_earlier_reasoning_are_read_back(client: anthropic.Anthropic) -> None:
    def answer(result: dict[str, Any]) -> str:
        message = client.messages.create(
            model=MODEL,
            max_tokens=16,
            messages=[
                {"role": "user", "content": "Weather in Oslo?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "I should ask the tool.", "signature": ""},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "get_weather",
                            "input": {"city": "Oslo"},
                        },
                    ],
                },
                {"role": "user", "content": [result]},
            ],
            tools=[WEATHER_TOOL],
            tool_choice={"type": "none"},
            **GREEDY,
        )
        return text_of(message)

    ok = answer({"type": "tool_result", "tool_use_id": "toolu_1", "content": "-3 C, snow"})
    failed = answer(
        {
            "type": "tool_result",
            "tool_use_id": "toolu_1",
            "content": [{"type": "text", "text": "-3 C, snow"}],
            "is_error": True,
        }
    )
    assert ok and failed and ok != failed  # the model read that the tool failed


def test_thinking_asked_of_a_model_that_does_not_think_is_left_to_it(
    client: anthropic.Anthropic,
) -> None:
    # as Ollama answers Claude Code, which asks every model to think
    thinking = client.messages.create(
        model=MODEL,
        max_tokens=12,
        messages=QUESTION,
        thinking={"type": "enabled", "budget_tokens": 1024},
        **GREEDY,
    )
    plain = client.messages.create(model=MODEL, max_tokens=12, messages=QUESTION, **GREEDY)
    assert [b.type for b in thinking.content] == ["text"]
    assert text_of(thinking) == text_of(plain)
    counted = client.messages.count_tokens(
        model=MODEL, messages=QUESTION, thinking={"type": "enabled", "budget_tokens": 1024}
    )
    assert (
        counted.input_tokens
        == client.messages.count_tokens(model=MODEL, messages=QUESTION).input_tokens
    )


def test_count_tokens_counts_a_conversation_longer_than_the_context(
    client: anthropic.Anthropic,
) -> None:
    turn = "Tell me more about the colors of the rainbow and where they come from. " * 4
    messages: list[Any] = []
    for _ in range(30):
        messages += [{"role": "user", "content": turn}, {"role": "assistant", "content": turn}]
    messages.append({"role": "user", "content": "And red?"})
    counted = client.messages.count_tokens(model=MODEL, messages=messages).input_tokens
    assert counted > 2048  # the test server's context: counted whole, not fitted into it
    # a message of it still answers: its oldest turns are left out, as in Ollama
    message = client.messages.create(model=MODEL, max_tokens=4, messages=messages, **GREEDY)
    read = message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0)
    assert read < 2048 < counted


def test_count_tokens_is_the_prompt_a_message_reads(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(model=MODEL, system="Be kind.", messages=QUESTION)
    message = client.messages.create(
        model=MODEL, max_tokens=2, system="Be kind.", messages=QUESTION, **GREEDY
    )
    usage = message.usage
    assert counted.input_tokens == usage.input_tokens + (usage.cache_read_input_tokens or 0)
    assert counted.input_tokens > 10
    # asked again, the prompt comes from the cache, counted as Anthropic counts cache reads
    again = client.messages.create(
        model=MODEL, max_tokens=2, system="Be kind.", messages=QUESTION, **GREEDY
    ).usage
    assert (again.cache_read_input_tokens or 0) > 0
    assert again.input_tokens + (again.cache_read_input_tokens or 0) == counted.input_tokens


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"messages": QUESTION}, "max_tokens: Field required"),
        ({"max_tokens": 0, "messages": QUESTION}, "max_tokens: Input should be greater"),
        ({"max_tokens": 4, "messages": []}, "messages: List should have at least 1 item"),
        (
            {"max_tokens": 4, "messages": [{"role": "tool", "content": "x"}]},
            "messages.0.role: Input should be 'user', 'assistant' or 'system'",
        ),
        (
            {"max_tokens": 4, "messages": QUESTION, "extra_body": {"temperature": 1.5}},
            "temperature: Input",
        ),
        (
            {
                "max_tokens": 4,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
                        ],
                    }
                ],
            },
            "images must be sent as base64",
        ),
        (
            {"max_tokens": 4, "messages": QUESTION, "tools": [WEATHER_TOOL]},
            "does not support tools",
        ),
        (
            {
                "max_tokens": 4,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": base64.b64encode(b"\x89PNG").decode(),
                                },
                            }
                        ],
                    }
                ],
            },
            "does not support images",
        ),
    ],
)
def test_mistakes_are_400s_in_anthropics_shape(
    power_server: PowerServer, body: dict[str, Any], words: str
) -> None:
    # sent raw: the SDK checks some of these itself before sending
    extra = body.pop("extra_body", {})
    response = requests.post(
        power_server.url + "/v1/messages", json={"model": MODEL, **body, **extra}, timeout=300
    )
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "error"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and words in error["message"]


def test_the_sdk_raises_its_own_exception_for_a_400(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(
            model=MODEL, max_tokens=4, messages=QUESTION, extra_body={"temperature": 1.5}
        )
    assert refused.value.status_code == 400
    assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_other_refusals_keep_the_shape(
    client: anthropic.Anthropic, power_server: PowerServer
) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="absent:1b", max_tokens=4, messages=QUESTION)
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    url = power_server.url + "/v1/messages"
    broken = requests.post(url, data=b"{not json", timeout=30)
    assert broken.status_code == 400
    assert broken.json()["type"] == "error"
    assert broken.json()["error"]["type"] == "invalid_request_error"
    batches = requests.post(url + "/batches", json={"requests": []}, timeout=30)
    assert batches.status_code == 404 and batches.json()["error"]["type"] == "not_found_error"
    for path in ("", "/count_tokens"):
        wrong_method = requests.get(url + path, timeout=30)
        assert wrong_method.status_code == 405 and wrong_method.json()["type"] == "error"
        assert wrong_method.headers["Allow"] == "POST"


def test_keys_go_in_x_api_key_or_a_bearer(keyed_server: PowerServer) -> None:
    def ask(**options: Any) -> Any:
        client = anthropic.Anthropic(base_url=keyed_server.url, max_retries=0, **options)
        return client.messages.create(model="absent:1b", max_tokens=4, messages=QUESTION)

    with pytest.raises(anthropic.AuthenticationError) as refused:
        ask(api_key="wrong")
    assert refused.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    # past the key check, the model is what is missing
    with pytest.raises(anthropic.NotFoundError):
        ask(api_key="k1")  # x-api-key
    with pytest.raises(anthropic.NotFoundError):
        ask(auth_token="k1")  # Authorization: Bearer, as Claude Code sends it
    # the models listing, which shares its path with the OpenAI surface, is keyed too
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=keyed_server.url, api_key="x", max_retries=0).models.list()
    keyed = anthropic.Anthropic(base_url=keyed_server.url, api_key="k1", max_retries=0)
    assert keyed.models.list().data == []

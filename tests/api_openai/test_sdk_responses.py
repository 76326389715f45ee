"""The Responses API (``/v1/responses``) through the official ``openai`` SDK, unchanged,
against the real SmolLM2 model; and its wire read with ``requests``."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
import requests
from openai import OpenAI
from pydantic import BaseModel

from api_openai import test_sdk_chat as chat_tools
from api_openai.wire_reading import MODEL, NO_EOS, assert_error_shape
from conftest import PowerServer, model_with_template

pytestmark = pytest.mark.model

#: the chat tests' tools, in the Responses API's flat shape
WEATHER_TOOL: dict[str, Any] = {"type": "function", **chat_tools.WEATHER_TOOL["function"]}
TIME_TOOL: dict[str, Any] = {"type": "function", **chat_tools.TIME_TOOL["function"]}


THINKER = "responses-thinker:1"
THINKING_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n<think>\n"
)


class Answer(BaseModel):
    color: str
    apples: int


def test_create_returns_a_complete_response(client: OpenAI) -> None:
    reply = client.responses.create(
        model=MODEL,
        input="Say hello.",
        instructions="Answer in one short sentence.",
        temperature=0,
        max_output_tokens=40,
        metadata={"ticket": "42"},
    )
    assert reply.id.startswith("resp_")
    assert reply.object == "response"
    assert reply.model == MODEL
    assert reply.created_at > 0
    assert reply.status in ("completed", "incomplete")
    assert reply.error is None
    assert reply.instructions == "Answer in one short sentence."
    assert reply.metadata == {"ticket": "42"}
    assert reply.temperature == 0
    assert reply.max_output_tokens == 40
    [message] = reply.output
    assert message.type == "message"
    assert message.id.startswith("msg_")
    assert message.role == "assistant"
    [part] = message.content
    assert part.type == "output_text"
    assert part.text and part.text == reply.output_text
    assert reply.usage is not None
    assert reply.usage.input_tokens > 0
    assert 0 < reply.usage.output_tokens <= 40
    assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens


def test_max_output_tokens_makes_an_incomplete_response(client: OpenAI) -> None:
    reply = client.responses.create(
        model=MODEL,
        input="Write a long poem about the sea.",
        temperature=0,
        max_output_tokens=3,
        extra_body={"logit_bias": NO_EOS},
    )
    assert reply.status == "incomplete"
    assert reply.incomplete_details is not None
    assert reply.incomplete_details.reason == "max_output_tokens"
    assert reply.output[0].type == "message"
    assert reply.output[0].status == "incomplete"
    assert reply.usage is not None and reply.usage.output_tokens == 3


def test_stream_deltas_make_the_same_text_as_a_plain_answer(client: OpenAI) -> None:
    """Greedy, so streamed and not streamed must agree; the SDK's helper checks every event
    against the items it has seen (an item's index, a part's index)."""
    asked: dict[str, Any] = {"model": MODEL, "input": "Name three fruits.", "temperature": 0}
    plain = client.responses.create(**asked, max_output_tokens=48)
    deltas: list[str] = []
    numbers: list[int] = []
    kinds: list[str] = []
    with client.responses.stream(**asked, max_output_tokens=48) as stream:
        for event in stream:
            numbers.append(event.sequence_number)
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
    assert numbers == list(range(len(numbers)))
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    final_kind = "response.completed" if plain.status == "completed" else "response.incomplete"
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        final_kind,
    ]
    assert "".join(deltas) == plain.output_text
    if plain.status == "completed":
        assert stream.get_final_response().output_text == plain.output_text


def test_parse_returns_a_pydantic_object(client: OpenAI) -> None:
    reply = client.responses.parse(
        model=MODEL,
        input="Pick a color and how many apples you see.",
        text_format=Answer,
        temperature=0,
        max_output_tokens=60,
    )
    assert isinstance(reply.output_parsed, Answer)
    assert Answer.model_validate_json(reply.output_text) == reply.output_parsed


def test_json_object_format_gives_an_object(client: OpenAI) -> None:
    reply = client.responses.create(
        model=MODEL,
        input="Describe a cat as JSON.",
        text={"format": {"type": "json_object"}},
        temperature=0,
        max_output_tokens=60,
    )
    if reply.status == "completed":
        assert isinstance(json.loads(reply.output_text), dict)
    else:  # cut short by max_output_tokens: still the start of an object
        assert reply.output_text.lstrip().startswith("{")


def test_required_function_call_and_its_output_round_trip(client: OpenAI) -> None:
    question = {"role": "user", "content": "What is the weather in Paris?"}
    reply = client.responses.create(
        model=MODEL,
        input=[question],  # type: ignore[list-item]
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="required",
        temperature=0,
        max_output_tokens=40,
    )
    assert reply.status == "completed"
    [call] = reply.output
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert call.call_id.startswith("call_")
    assert call.id is not None and call.id.startswith("fc_")
    assert isinstance(json.loads(call.arguments).get("city"), str)
    assert reply.output_text == ""
    assert [tool.type for tool in reply.tools] == ["function"]

    # stateless: the next request carries the call and its output
    answer = client.responses.create(
        model=MODEL,
        input=[
            question,
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 22 C"},
        ],  # type: ignore[list-item]
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="none",
        temperature=0,
        max_output_tokens=16,
    )
    assert answer.output_text
    assert all(item.type == "message" for item in answer.output)


def test_namespaced_functions_are_offered_by_their_qualified_names(v1: str) -> None:
    # as OpenAI's Codex CLI declares its tools: a namespace of functions, and the hosted
    # web_search, which only OpenAI runs and which is left out here
    namespace = {
        "type": "namespace",
        "name": "weather_v1",
        "description": "Weather tools.",
        "tools": [WEATHER_TOOL, TIME_TOOL],
    }
    body = {
        "model": MODEL,
        "input": "What is the weather in Paris?",
        "tools": [
            {"type": "web_search", "external_web_access": False},
            {"type": "web_search_preview_2025_03_11"},
            namespace,
        ],
        "tool_choice": {"type": "function", "name": "weather_v1.get_weather"},
        "temperature": 0,
        # room for the call: on CPUs without AMX the tiny model spaces its JSON out widely
        "max_output_tokens": 100,
    }
    reply = requests.post(v1 + "/responses", json=body, timeout=300).json()
    [call] = reply["output"]
    assert (call["type"], call["name"]) == ("function_call", "weather_v1.get_weather")
    assert isinstance(json.loads(call["arguments"])["city"], str)
    kinds = [tool["type"] for tool in reply["tools"]]
    assert kinds == ["web_search", "web_search_preview_2025_03_11", "namespace"]
    assert [t["name"] for t in reply["tools"][2]["tools"]] == ["get_weather", "get_time"]
    # the call goes back as the next request's input, by the same name
    body["input"] = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {k: call[k] for k in ("type", "call_id", "name", "arguments")},
        {"type": "function_call_output", "call_id": call["call_id"], "output": "Sunny"},
    ]
    body["tool_choice"] = "none"
    answer = requests.post(v1 + "/responses", json=body, timeout=300)
    assert answer.status_code == 200, answer.text
    duplicate = {**body, "tools": [namespace, namespace]}
    refused = requests.post(v1 + "/responses", json=duplicate, timeout=60)
    assert refused.status_code == 400 and "Duplicate" in refused.json()["error"]["message"]


def test_named_function_streams_through_the_sdk_helper(client: OpenAI) -> None:
    with client.responses.stream(
        model=MODEL,
        input="What time is it in Berlin?",
        tools=[WEATHER_TOOL, TIME_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_time"},
        temperature=0,
        max_output_tokens=40,
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    [call] = final.output
    assert call.type == "function_call"
    assert call.name == "get_time"
    assert json.loads(call.arguments)["timezone"] in ("UTC", "CET")
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds


def test_allowed_tools_limit_the_calls_to_the_tools_they_list(client: OpenAI) -> None:
    allowed: Any = {
        "type": "allowed_tools",
        "mode": "required",
        "tools": [{"type": "function", "name": "get_time"}],
    }
    response = client.responses.create(
        model=MODEL,
        input="What is the weather in Paris?",
        tools=[WEATHER_TOOL, TIME_TOOL],  # type: ignore[list-item]
        tool_choice=allowed,
        temperature=0,
        max_output_tokens=40,
    )
    names = {item.name for item in response.output if item.type == "function_call"}
    assert names == {"get_time"}


def test_instructions_and_input_items_make_the_prompt_chat_makes(client: OpenAI) -> None:
    """The same conversation as Responses items and as chat messages: the same prompt."""
    history: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "input_text", "text": "My name is Ada."}]},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello Ada.", "annotations": []}],
        },
        {"role": "user", "content": "What is my name?"},
    ]
    reply = client.responses.create(
        model=MODEL,
        instructions="You are a terse assistant.",
        input=history,  # type: ignore[arg-type]
        temperature=0,
        max_output_tokens=4,
    )
    chat = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": "What is my name?"},
        ],
        temperature=0,
        max_tokens=4,
    )
    assert reply.usage is not None and chat.usage is not None
    assert reply.usage.input_tokens == chat.usage.prompt_tokens
    alone = client.responses.create(
        model=MODEL, input="What is my name?", temperature=0, max_output_tokens=4
    )
    assert alone.usage is not None and alone.usage.input_tokens < reply.usage.input_tokens


def test_an_empty_answer_streams_one_empty_message(client: OpenAI) -> None:
    # log-probabilities keep the text off the engine thread's direct way; <|im_end|> forced
    # ends at once
    with client.responses.stream(
        model=MODEL,
        input="Say hello.",
        include=["message.output_text.logprobs"],
        temperature=0,
        max_output_tokens=8,
        extra_body={"logit_bias": {"2": 100}},
    ) as stream:
        numbers = [event.sequence_number for event in stream]
        final = stream.get_final_response()
    assert numbers == list(range(len(numbers)))
    [message] = final.output
    assert message.type == "message" and message.content[0].text == ""  # type: ignore[union-attr]
    assert final.status == "completed"


def test_logprobs_when_included(client: OpenAI) -> None:
    reply = client.responses.create(
        model=MODEL,
        input="Say hello.",
        include=["message.output_text.logprobs"],
        top_logprobs=2,
        temperature=0,
        max_output_tokens=4,
    )
    [part] = reply.output[0].content  # type: ignore[union-attr]
    assert part.type == "output_text"
    assert part.logprobs
    assert "".join(item.token for item in part.logprobs) == part.text
    for item in part.logprobs:
        assert item.logprob <= 0
        assert len(item.top_logprobs) == 2
        assert item.top_logprobs[0].logprob >= item.top_logprobs[1].logprob


def test_top_logprobs_alone_adds_no_logprobs(client: OpenAI) -> None:
    # as OpenAI: log-probabilities come only when 'include' asks for them
    reply = client.responses.create(
        model=MODEL, input="Say hello.", top_logprobs=2, temperature=0, max_output_tokens=3
    )
    assert reply.output[0].content[0].logprobs == []  # type: ignore[union-attr]


def test_unknown_conversations_and_responses_are_not_found(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as unknown_conversation:
        client.responses.create(model=MODEL, input="Hi", conversation="conv_123")
    assert unknown_conversation.value.param == "conversation"
    with pytest.raises(openai.BadRequestError) as unknown:
        client.responses.create(model=MODEL, input="Hi", previous_response_id="resp_123")
    assert unknown.value.code == "previous_response_not_found"
    assert unknown.value.param == "previous_response_id"
    for call in (
        lambda: client.responses.retrieve("resp_123"),
        lambda: client.responses.delete("resp_123"),
        lambda: client.responses.cancel("resp_123"),
        lambda: client.responses.input_items.list("resp_123"),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert "stored_responses_bytes" in str(caught.value)


def test_a_stored_response_is_continued_retrieved_listed_and_deleted(client: OpenAI) -> None:
    question = "Name a fruit."
    first = client.responses.create(
        model=MODEL, input=question, instructions="Be brief.", temperature=0, max_output_tokens=8
    )
    assert first.store is True
    retrieved = client.responses.retrieve(first.id)
    assert retrieved.id == first.id and retrieved.output_text == first.output_text
    assert retrieved.usage == first.usage
    follow_up = [{"role": "user", "content": "And a vegetable?"}]
    second = client.responses.create(
        model=MODEL,
        input=follow_up,  # type: ignore[arg-type]
        previous_response_id=first.id,
        temperature=0,
        max_output_tokens=8,
    )
    assert second.previous_response_id == first.id
    # the prompt of the whole conversation sent at once (instructions are not carried over)
    whole = client.responses.create(
        model=MODEL,
        input=[
            {"role": "user", "content": question},
            *[item.model_dump(exclude_none=True) for item in first.output],
            *follow_up,
        ],  # type: ignore[list-item]
        temperature=0,
        max_output_tokens=8,
        store=False,
    )
    assert second.usage is not None and whole.usage is not None
    assert second.usage.input_tokens == whole.usage.input_tokens
    # its own input, with ids
    [item] = client.responses.input_items.list(second.id).data
    assert item.type == "message" and item.id.startswith("msg_")
    assert item.content[0].text == "And a vegetable?"  # type: ignore[union-attr]
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(second.id)  # nothing runs in the background
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError) as gone:
        client.responses.create(model=MODEL, input="More?", previous_response_id=first.id)
    assert gone.value.code == "previous_response_not_found"
    # what continued it is still there, its conversation whole
    third = client.responses.create(
        model=MODEL, input="More?", previous_response_id=second.id, max_output_tokens=4
    )
    assert third.previous_response_id == second.id


def test_store_false_and_streamed_responses(client: OpenAI) -> None:
    unstored = client.responses.create(model=MODEL, input="Hi", store=False, max_output_tokens=4)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    events = list(
        client.responses.create(model=MODEL, input="Hi", stream=True, max_output_tokens=4)
    )
    final = events[-1].response  # type: ignore[union-attr]
    assert final.store is True
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_continuations_are_checked_as_the_clients_own_request(client: OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="Hi", max_output_tokens=2)
    with pytest.raises(openai.BadRequestError) as wrong_type:
        client.responses.create(
            model=MODEL,
            input="Hi",
            extra_body={"previous_response_id": 5},
        )
    assert wrong_type.value.param == "previous_response_id"
    assert wrong_type.value.code != "previous_response_not_found"
    with pytest.raises(openai.BadRequestError) as bad_item:
        client.responses.create(
            model=MODEL,
            input=[{"role": "user", "content": "ok"}, 5],  # type: ignore[list-item]
            previous_response_id=first.id,
        )
    assert bad_item.value.param == "input[1]"  # its own place, not the conversation's
    with pytest.raises(openai.BadRequestError) as long_id:
        client.responses.create(model=MODEL, input="Hi", previous_response_id="r" * 100_000)
    assert len(str(long_id.value)) < 1000


def test_input_items_are_listed_a_page_at_a_time(client: OpenAI) -> None:
    items = [{"role": "user", "content": f"Line {n}."} for n in range(5)]
    reply = client.responses.create(
        model=MODEL,
        input=items,  # type: ignore[arg-type]
        max_output_tokens=2,
    )
    newest_first = client.responses.input_items.list(reply.id, limit=2)
    assert [item.content[0].text for item in newest_first.data] == ["Line 4.", "Line 3."]  # type: ignore[union-attr]
    assert newest_first.has_more is True
    every = [item.content[0].text for item in client.responses.input_items.list(reply.id, limit=2)]  # type: ignore[union-attr]
    assert every == [f"Line {n}." for n in range(4, -1, -1)]  # the SDK follows 'after'
    oldest_first = client.responses.input_items.list(reply.id, order="asc")
    assert [item.content[0].text for item in oldest_first.data] == [f"Line {n}." for n in range(5)]  # type: ignore[union-attr]
    with pytest.raises(openai.BadRequestError):
        client.responses.input_items.list(reply.id, limit=500)
    # ids the client repeats are made unique, so pages end
    repeated = client.responses.create(
        model=MODEL,
        input=[{"role": "user", "content": f"{n}", "id": "msg_same"} for n in range(3)],  # type: ignore[misc]
        max_output_tokens=2,
    )
    listed = list(client.responses.input_items.list(repeated.id, limit=1, order="asc"))
    assert [item.content[0].text for item in listed] == ["0", "1", "2"]  # type: ignore[union-attr]


def test_unknown_model_is_not_found(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="ghost:1b", input="Hi")


# ----------------------------------------------------------------------------- the wire
def read_events(response: requests.Response) -> list[tuple[str, dict[str, Any]]]:
    """Every ``event:``/``data:`` pair of a Responses stream, checking the framing."""
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events: list[tuple[str, dict[str, Any]]] = []
    for frame in response.text.split("\n\n"):
        if not frame or frame.startswith(":"):
            continue
        name_line, data_line = frame.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: "), frame
        name, data = name_line[len("event: ") :], json.loads(data_line[len("data: ") :])
        assert data["type"] == name
        events.append((name, data))
    assert response.text.endswith("\n\n")
    return events


def test_stream_framing_ends_with_the_final_response_and_no_done(v1: str) -> None:
    response = requests.post(
        v1 + "/responses",
        json={
            "model": MODEL,
            "input": "Write a long poem about the sea.",
            "stream": True,
            "max_output_tokens": 5,
            "logit_bias": NO_EOS,
            "temperature": 0,
        },
        timeout=120,
    )
    assert "[DONE]" not in response.text
    events = read_events(response)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    name, last = events[-1]
    assert name == "response.incomplete"
    final = last["response"]
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["usage"]["output_tokens"] == 5
    deltas = [data["delta"] for name, data in events if name == "response.output_text.delta"]
    [message] = final["output"]
    assert message["content"][0]["text"] == "".join(deltas)
    created = events[0][1]["response"]
    assert created["status"] == "in_progress" and created["output"] == []
    assert created["id"] == final["id"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": MODEL}, "input"),
        ({"model": MODEL, "input": 3}, "input"),
        ({"model": MODEL, "input": []}, "input"),
        ({"input": "Hi"}, "model"),
        ({"model": MODEL, "input": [{"role": "wizard", "content": "x"}]}, "input[0].role"),
        ({"model": MODEL, "input": [{"type": "function_call_output"}]}, "input[0].call_id"),
        (
            {"model": MODEL, "input": [{"type": "function_call", "call_id": "c", "name": "f"}]},
            "input[0].arguments",
        ),
        (
            {
                "model": MODEL,
                "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{"}],
            },
            "input[0].arguments",
        ),
        (
            {
                "model": MODEL,
                "input": [
                    {"type": "function_call", "call_id": "c", "name": "f", "arguments": "[" * 10**5}
                ],
            },
            "input[0].arguments",
        ),
        (
            {
                "model": MODEL,
                "input": [
                    {
                        "type": "function_call_output",
                        "call_id": "c",
                        "output": [
                            {"type": "input_image", "image_url": "data:image/png;base64,aGk="}
                        ],
                    }
                ],
            },
            "images",  # this model has no vision: the image is refused, not dropped
        ),
        ({"model": MODEL, "input": [{"type": "item_reference", "id": "x"}]}, "input[0].id"),
        (
            {"model": MODEL, "input": "x", "tools": [{"type": "custom", "name": "g"}]},
            "tools[0].type",
        ),
        (
            {
                "model": MODEL,
                "input": "x",
                "tools": [{"type": "namespace", "name": "ns", "tools": [{"type": "web_search"}]}],
            },
            "tools[0].tools[0].type",
        ),
        (
            {"model": MODEL, "input": "x", "tools": [{"type": "function", "name": "bad name"}]},
            "tools[0].name",
        ),
        (
            {"model": MODEL, "input": "x", "tool_choice": {"type": "function", "name": "f"}},
            "tool_choice",
        ),
        ({"model": MODEL, "input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"model": MODEL, "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": MODEL, "input": "x", "temperature": "hot"}, "temperature"),
        ({"model": MODEL, "input": "x", "truncation": "middle"}, "truncation"),
        ({"model": MODEL, "input": "x", "conversation": ["conv_1"]}, "conversation"),
        ({"model": MODEL, "input": "x", "background": "yes"}, "background"),
        ({"model": MODEL, "input": "x", "stream_options": {}}, "stream_options"),
        ({"model": MODEL, "input": "x", "metadata": {"k": 1}}, "metadata.k"),
    ],
)
def test_bad_requests_are_400_naming_the_field(v1: str, body: dict, param: str) -> None:
    response = requests.post(v1 + "/responses", json=body, timeout=60)
    assert_error_shape(response, 400, param=param)


def test_wrong_method_is_405(v1: str) -> None:
    response = requests.get(v1 + "/responses", timeout=60)
    assert_error_shape(response, 405)
    assert response.headers["Allow"] == "POST"


def test_truncation_auto_drops_the_oldest_turns_of_a_long_conversation(v1: str) -> None:
    # five turns of about 500 tokens each do not fit a 2,048-token context
    turns: list[dict[str, Any]] = []
    for index in range(5):
        turns.append({"role": "user", "content": f"Note {index}: " + "hello " * 500})
        turns.append({"role": "assistant", "content": "Noted."})
    turns.append({"role": "user", "content": "Say hi."})
    body = {"model": MODEL, "input": turns, "max_output_tokens": 4, "temperature": 0}
    refused = requests.post(v1 + "/responses", json=body, timeout=120)
    assert_error_shape(refused, 400, code="context_length_exceeded")
    answered = requests.post(v1 + "/responses", json={**body, "truncation": "auto"}, timeout=120)
    assert answered.status_code == 200, answered.text
    reply = answered.json()
    assert reply["truncation"] == "auto"
    assert 0 < reply["usage"]["input_tokens"] < 2048


def test_a_thinking_models_reasoning_is_a_reasoning_item(
    client: OpenAI, power_server: PowerServer
) -> None:
    # a template that opens <think> makes every model a "thinking" one
    with model_with_template(power_server, THINKER, THINKING_TEMPLATE):
        reply = client.responses.create(
            model=THINKER, input="Why is the sky blue?", temperature=0, max_output_tokens=6
        )
        [item] = reply.output
        assert item.type == "reasoning"
        assert item.id.startswith("rs_")
        assert item.content and item.content[0].type == "reasoning_text"
        assert item.content[0].text
        assert reply.output_text == ""
        assert reply.status == "incomplete"

        streamed = requests.post(
            power_server.url + "/v1/responses",
            json={
                "model": THINKER,
                "input": "Why is the sky blue?",
                "stream": True,
                "temperature": 0,
                "max_output_tokens": 6,
            },
            timeout=120,
        )
        events = read_events(streamed)
        deltas = [d["delta"] for name, d in events if name == "response.reasoning_text.delta"]
        [done] = [d for name, d in events if name == "response.reasoning_text.done"]
        assert deltas and done["text"] == "".join(deltas) == item.content[0].text
        assert not [name for name, _ in events if name.startswith("response.output_text")]

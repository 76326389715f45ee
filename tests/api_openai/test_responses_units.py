"""The Responses surface without a server: input items as messages, and the events of an
error after a stream began."""

from __future__ import annotations

import json

import pytest

from power_api_openai.responses import ResponseBuilder, event_frame
from power_api_openai.responses_request import ResponsesOptions, parse_input
from power_core.errors import InvalidRequest


def test_a_string_is_one_user_message() -> None:
    [message] = parse_input("Hi there")
    assert (message.role, message.content) == ("user", "Hi there")


def test_calls_join_the_assistant_turn_and_outputs_name_their_tool() -> None:
    messages = parse_input(
        [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": "Two cities."}],
            },
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Checking."}],
            },
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "weather",
                "arguments": '{"city": "Paris"}',
            },
            {
                "type": "function_call",
                "call_id": "c2",
                "name": "weather",
                "arguments": '{"city": "Rome"}',
            },
            {"type": "function_call_output", "call_id": "c2", "output": "Rain"},
            {
                "type": "function_call_output",
                "call_id": "c1",
                "output": [{"type": "input_text", "text": "Sun"}],
            },
        ]
    )
    assert [m.role for m in messages] == ["user", "assistant", "tool", "tool"]
    turn = messages[1]
    assert turn.content == "Checking."
    assert turn.thinking == "Two cities."
    assert [(c.id, c.arguments["city"]) for c in turn.tool_calls] == [
        ("c1", "Paris"),
        ("c2", "Rome"),
    ]
    assert [(m.tool_call_id, m.tool_name, m.content) for m in messages[2:]] == [
        ("c2", "weather", "Rain"),
        ("c1", "weather", "Sun"),
    ]


def test_reasoning_starts_a_new_assistant_turn() -> None:
    messages = parse_input(
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {
                "type": "reasoning",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": "Hm."}],
            },
            {"role": "assistant", "content": "How can I help?"},
        ]
    )
    assert [(m.role, m.content, m.thinking) for m in messages] == [
        ("user", "Hi", None),
        ("assistant", "Hello.", None),
        ("assistant", "How can I help?", "Hm."),
    ]


def test_inline_images_are_decoded_and_file_ids_refused() -> None:
    [message] = parse_input(
        [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,aGVsbG8="},
                ],
            }
        ]
    )
    assert message.images == [b"hello"]
    with pytest.raises(InvalidRequest) as caught:
        parse_input([{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}])
    assert caught.value.param == "input[0].content[0].file_id"


def test_an_error_mid_stream_is_an_error_event_then_response_failed() -> None:
    builder = ResponseBuilder(
        "m:1", ResponsesOptions(stream=True, logprobs=False), {"temperature": 1.0, "top_p": 1.0}
    )
    started = builder.start()
    body = {
        "error": {
            "message": "the model was unloaded",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    frames = builder.failed_frames(body)
    events = [json.loads(frame.split("\n")[1][len("data: ") :]) for frame in frames]
    assert [e["type"] for e in events] == ["error", "response.failed"]
    assert [e["sequence_number"] for e in events] == [len(started), len(started) + 1]
    assert events[0]["message"] == "the model was unloaded"
    failed = events[1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "server_error", "message": "the model was unloaded"}
    assert frames[0].startswith("event: error\n") and frames == [event_frame(e) for e in events]

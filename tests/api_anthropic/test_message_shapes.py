"""The Anthropic surface without a model: request bodies read into the core's messages, and
made-up generation events rendered as a message and as a stream, which the official SDK's
own stream accumulator must put back together into the same message."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from pdf_files import pdf_with_pages
from power_api_anthropic.messages import _guarded, _Message
from power_api_anthropic.messages_request import MessagesOptions, parse_messages_request
from power_core.errors import Cancelled, InvalidRequest, UnsupportedFeature
from power_core.types import (
    ChoiceDone,
    GenerationDone,
    GenerationEvent,
    PromptProgress,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
)

EVENTS = TypeAdapter(RawMessageStreamEvent)


def finish(reason: str, tokens: int, stop: str | None = None) -> list[GenerationEvent]:
    usage = Usage(prompt_tokens=10, cached_tokens=4, completion_tokens=tokens)
    return [ChoiceDone(0, reason, tokens, stop), GenerationDone(usage=usage, reason=reason)]  # type: ignore[arg-type]


def rendered(
    events: list[GenerationEvent], stops: tuple[str, ...] = (), max_tokens: int = 8
) -> tuple[list[tuple[str, dict[str, Any]]], Message, dict[str, Any]]:
    """The stream's (event, data) pairs, the SDK's message from them, and the whole message."""
    options = MessagesOptions(stream=True, stop_sequences=list(stops), max_tokens=max_tokens)
    frames = []
    for frame in _Message("msg_x", "m", options).events(iter(events)):
        name, data = frame.removesuffix("\n\n").split("\n")
        frames.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    snapshot = None
    buffers: dict[int, Any] = {}
    for name, data in frames:
        assert data["type"] == name
        if name != "ping":
            event = EVENTS.validate_python(data)
            snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)  # type: ignore[call-arg]
    assert snapshot is not None
    options = MessagesOptions(stream=False, stop_sequences=list(stops), max_tokens=max_tokens)
    whole = _Message("msg_x", "m", options)
    return frames, snapshot, whole.whole(iter(events))


def without_ids(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Blocks without their ids: a call that came without one gets a new one each time."""
    return [{k: v for k, v in block.items() if k != "id"} for block in blocks]


def test_thinking_text_and_calls_come_as_blocks_in_order_streamed_or_whole() -> None:
    calls = [ToolCall("get_weather", {"city": "Oslo"}, "call_1"), ToolCall("now", {}, "toolu_x")]
    frames, streamed, whole = rendered(
        [
            PromptProgress(processed=512, total=700),
            PromptProgress(processed=700, total=700),
            ThinkingDelta(0, "Let me "),
            ThinkingDelta(0, "see."),
            ThinkingDelta(0, ""),
            TextDelta(0, "Checking."),
            ToolCallEvent(0, 0, calls[0]),
            ToolCallEvent(0, 1, calls[1]),
            *finish("tool_calls", 9),
        ]
    )
    names = [name for name, _ in frames]
    assert names[:2] == ["message_start", "ping"]  # a ping while the prompt is read
    assert frames[0][1]["message"]["usage"]["input_tokens"] == 700
    starts = [data for name, data in frames if name == "content_block_start"]
    assert [s["index"] for s in starts] == [0, 1, 2, 3]
    assert names.count("content_block_stop") == 4 and names[-2:] == [
        "message_delta",
        "message_stop",
    ]
    Message.model_validate(whole)
    assert without_ids(streamed.model_dump(exclude_none=True)["content"]) == without_ids(
        whole["content"]
    )
    assert [b["type"] for b in whole["content"]] == ["thinking", "text", "tool_use", "tool_use"]
    assert whole["content"][0]["thinking"] == "Let me see."
    assert [b.get("input") for b in whole["content"][2:]] == [{"city": "Oslo"}, {}]
    ids = [b["id"] for b in whole["content"][2:]]
    assert ids[0].startswith("toolu_") and ids[1] == "toolu_x"
    assert streamed.stop_reason == whole["stop_reason"] == "tool_use"
    usage = whole["usage"]
    assert (usage["input_tokens"], usage["cache_read_input_tokens"]) == (6, 4)
    assert streamed.usage.output_tokens == usage["output_tokens"] == 9


def test_interleaved_text_and_thinking_keep_their_order() -> None:
    _, streamed, whole = rendered(
        [TextDelta(0, "a"), ThinkingDelta(0, "b"), TextDelta(0, "c"), *finish("stop", 3)]
    )
    kinds = [(b["type"], b.get("text", b.get("thinking"))) for b in whole["content"]]
    assert kinds == [("text", "a"), ("thinking", "b"), ("text", "c")]
    assert streamed.model_dump(exclude_none=True)["content"] == whole["content"]
    assert whole["stop_reason"] == "end_turn" and whole["stop_sequence"] is None


def test_an_empty_answer_is_one_empty_text_block() -> None:
    frames, streamed, whole = rendered(finish("stop", 0))
    assert whole["content"] == [{"type": "text", "text": ""}]
    assert streamed.model_dump(exclude_none=True)["content"] == whole["content"]
    assert [name for name, _ in frames].count("content_block_start") == 1


@pytest.mark.parametrize(
    ("reason", "tokens", "stop", "stops", "expected"),
    [
        ("stop", 1, "###", ("###",), ("stop_sequence", "###")),
        ("stop", 1, "<|im_end|>", ("###",), ("end_turn", None)),  # the model's own stop
        ("length", 8, None, ("###",), ("max_tokens", None)),
        ("length", 3, None, (), ("model_context_window_exceeded", None)),  # the context filled
    ],
)
def test_stop_reasons(
    reason: str,
    tokens: int,
    stop: str | None,
    stops: tuple[str, ...],
    expected: tuple[str, str | None],
) -> None:
    events = [TextDelta(0, "x"), *finish(reason, tokens, stop)]
    _, streamed, whole = rendered(events, stops, max_tokens=8)
    assert (whole["stop_reason"], whole["stop_sequence"]) == expected
    assert (streamed.stop_reason, streamed.stop_sequence) == expected


@pytest.mark.parametrize(
    ("error", "kind"),
    [(InvalidRequest("bad"), "invalid_request_error"), (Cancelled("gone"), "overloaded_error")],
)
def test_an_error_once_streaming_began_is_an_error_event(error: Exception, kind: str) -> None:
    cancelled: list[bool] = []

    def frames() -> Iterator[str]:
        yield "event: ping\ndata: {}\n\n"
        raise error

    out = list(_guarded(frames(), lambda: cancelled.append(True)))
    name, data = out[-1].removesuffix("\n\n").split("\n")
    assert name == "event: error" and cancelled == [True]
    body = json.loads(data.removeprefix("data: "))
    assert body["type"] == "error" and body["error"]["type"] == kind


# ------------------------------------------------------------------ reading requests
def parse(**body: Any) -> Any:
    return parse_messages_request({"model": "m", "max_tokens": 8, **body})[0]


def test_tool_results_come_before_the_users_text_and_know_their_tool() -> None:
    request = parse(
        system=[
            {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Use tools."},
        ],
        cache_control={"type": "ephemeral"},
        messages=[
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Ask the tool.", "signature": "abc"},
                    {"type": "redacted_thinking", "data": "xyz"},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"c": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Thanks."},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "sunny"}],
                        "cache_control": {"type": "ephemeral"},
                    },
                ],
            },
        ],
    )
    shape = [(m.role, m.content, m.tool_name, m.thinking) for m in request.messages]
    assert shape == [
        ("system", "You are terse.\n\nUse tools.", None, None),
        ("user", "Weather?", None, None),
        ("assistant", "", None, "Ask the tool."),
        ("tool", "sunny", "weather", None),
        ("user", "Thanks.", None, None),
    ]
    assert request.messages[2].tool_calls == [ToolCall("weather", {"c": 1}, "toolu_1")]
    assert request.messages[3].tool_call_id == "toolu_1"


def test_a_system_message_among_the_messages_is_a_system_turn_where_it_stands() -> None:
    # as Claude Code sends its environment
    request = parse(
        system="You are an agent.",
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Hello."}]},
            {"role": "system", "content": [{"type": "text", "text": "# Environment\nlinux"}]},
            {"role": "system", "content": "Be brief."},
        ],
    )
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "You are an agent."),
        ("user", "Hello."),
        ("system", "# Environment\nlinux"),
        ("system", "Be brief."),
    ]
    with pytest.raises(UnsupportedFeature):  # a system turn carries text only
        parse(messages=[{"role": "system", "content": [{"type": "tool_result"}]}])


def test_images_documents_and_blocks_of_server_tools() -> None:
    png = b"\x89PNG\r\n"
    request = parse(
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": base64.b64encode(png).decode(),
                        },
                    },
                    {"type": "document", "source": {"type": "text", "data": "Notes."}},
                    {
                        "type": "document",
                        "title": "report.pdf",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": base64.b64encode(pdf_with_pages("Sales rose.")).decode(),
                        },
                    },
                    {"type": "web_search_tool_result", "tool_use_id": "s1", "content": []},
                    {"type": "text", "text": "Read them."},
                ],
            }
        ]
    )
    (message,) = request.messages
    assert message.images == [png]
    # the PDF's text, under its title; the search result left out
    assert message.content == "Notes.\n\nreport.pdf\n\nSales rose.\n\nRead them."


def test_server_tools_are_left_out_and_client_tools_kept() -> None:
    request = parse(
        messages=[{"role": "user", "content": "x"}],
        tools=[
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
            {"name": "lookup", "input_schema": {"type": "object"}},
            {"type": "custom", "name": "other", "input_schema": {"type": "object"}},
        ],
    )
    assert [tool.name for tool in request.tools] == ["lookup", "other"]


def test_thinking_effort_format_and_what_counting_reads() -> None:
    assert parse(messages=[{"role": "user", "content": "x"}]).think is None
    enabled = {"type": "enabled", "budget_tokens": 20_000}  # more than max_tokens: not enforced
    assert parse(messages=[{"role": "user", "content": "x"}], thinking=enabled).think is True
    off = parse(messages=[{"role": "user", "content": "x"}], thinking={"type": "disabled"})
    assert off.think is False
    effort = parse(messages=[{"role": "user", "content": "x"}], output_config={"effort": "max"})
    assert (effort.think, effort.think_level) == (None, "high")
    schema = {"type": "object"}
    formatted = parse(
        messages=[{"role": "user", "content": "x"}],
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    assert formatted.response_format.schema == schema
    assert parse(messages=[{"role": "user", "content": "x"}], mcp_servers=[]).fit_history
    counted, _ = parse_messages_request(
        {"model": "m", "messages": [{"role": "user", "content": "x"}]}, count_only=True
    )
    assert counted.max_tokens is None and not counted.fit_history  # the whole conversation


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"mcp_servers": [{"type": "url", "url": "https://x"}]}, UnsupportedFeature),
        ({"thinking": {"type": "sometimes"}}, InvalidRequest),
        ({"output_config": {"effort": "extreme"}}, InvalidRequest),
        ({"output_config": {"format": {"type": "regex"}}}, InvalidRequest),
        ({"tool_choice": {"type": "any"}}, InvalidRequest),  # no tools to choose from
        ({"tools": [{"name": "a b", "input_schema": {}}]}, InvalidRequest),
        ({"stop_sequences": ["ok", 3]}, InvalidRequest),
    ],
)
def test_requests_this_server_cannot_honour_are_refused(
    body: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        parse(messages=[{"role": "user", "content": "x"}], **body)

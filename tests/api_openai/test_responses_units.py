"""The Responses surface without a server: input items as messages, and the events of an
error after a stream began."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from power_api_openai.response_shelf import BLOCK, DiskShelf
from power_api_openai.response_store import ByteBudget, ResponseStore
from power_api_openai.responses import ResponseBuilder, direct_delta, event_frame
from power_api_openai.responses_continued import with_ids
from power_api_openai.responses_request import ResponsesOptions, parse_input
from power_core.errors import InvalidRequest, PowerError
from power_core.server.direct import DirectWriter
from power_core.types import (
    ChoiceDone,
    GenerationDone,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
)


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
    builder = _builder()
    started = builder.start()
    body = {
        "error": {
            "message": "the model was unloaded",
            "type": "server_error",
            "param": None,
            "code": "cancelled",
        }
    }
    frames = builder.failed_frames(body)
    events = [json.loads(frame.split("\n")[1][len("data: ") :]) for frame in frames]
    assert [e["type"] for e in events] == ["error", "response.failed"]
    assert [e["sequence_number"] for e in events] == [len(started), len(started) + 1]
    assert (events[0]["message"], events[0]["code"]) == ("the model was unloaded", "cancelled")
    failed = events[1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "server_error", "message": "the model was unloaded"}
    assert frames[0].startswith("event: error\n") and frames == [event_frame(e) for e in events]


def _builder() -> ResponseBuilder:
    return ResponseBuilder(
        "m:1", ResponsesOptions(stream=True, logprobs=False), {"temperature": 1.0, "top_p": 1.0}
    )


def test_an_empty_output_still_opens_and_closes_one_message() -> None:
    builder = _builder()
    events = builder.start()
    events += builder.feed(ChoiceDone(choice=0, reason="stop", completion_tokens=1))
    events += builder.feed(
        GenerationDone(usage=Usage(prompt_tokens=5, completion_tokens=1), reason="stop")
    )
    events += builder.finish()
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events][2:] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    [message] = events[-1]["response"]["output"]
    assert message["content"][0]["text"] == "" and message["status"] == "completed"


def test_reasoning_text_and_a_call_are_three_items_in_order() -> None:
    builder = _builder()
    events = builder.start()
    for event in (
        ThinkingDelta(choice=0, text="Let me "),
        ThinkingDelta(choice=0, text="see."),
        TextDelta(choice=0, text="Checking"),
        TextDelta(choice=0, text=" now."),
        ToolCallEvent(choice=0, index=0, call=ToolCall(name="weather", arguments={"city": "Oslo"})),
        ChoiceDone(choice=0, reason="tool_calls", completion_tokens=9),
    ):
        events += builder.feed(event)
    events += builder.finish()
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    added = [
        (e["output_index"], e["item"]["type"]) for e in events if e["type"].endswith("item.added")
    ]
    assert added == [(0, "reasoning"), (1, "message"), (2, "function_call")]
    done = [e for e in events if e["type"] == "response.output_item.done"]
    assert [e["output_index"] for e in done] == [0, 1, 2]
    reasoning, message, call = events[-1]["response"]["output"]
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "Let me see."}]
    assert message["content"][0]["text"] == "Checking now." and message["status"] == "completed"
    assert (call["name"], json.loads(call["arguments"])) == ("weather", {"city": "Oslo"})
    assert call["status"] == "completed" and call["call_id"].startswith("call_")
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert {(e["output_index"], e["item_id"]) for e in deltas} == {(1, message["id"])}


def test_a_direct_write_the_writer_declines_is_not_counted() -> None:
    """A declined piece comes back through ``feed``: counted there, once."""
    ours, theirs = socket.socketpair()
    try:
        ours.setblocking(False)
        handler = SimpleNamespace(headers_sent=True, response_use_chunked=False, socket=ours)
        writer = DirectWriter(handler)
        builder = _builder()
        events = builder.start() + builder.open_message()
        frame = direct_delta(builder, writer)
        writer.pending = b"unsent"  # a slow client: the writer declines until it is sent
        assert frame("Hello") == b"" and not writer.write_nowait(frame("Hello"))
        events += builder.feed(TextDelta(choice=0, text="Hello"))
        writer.pending = b""
        sent = frame(" world")
        assert writer.write_nowait(sent)
        assert theirs.recv(4096) == sent
        events += builder.finish()
        direct_number = json.loads(sent.split(b"\ndata: ")[1])["sequence_number"]
        numbers = sorted([*(e["sequence_number"] for e in events), direct_number])
        assert numbers == list(range(len(events) + 1))
        assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Hello world"
    finally:
        ours.close()
        theirs.close()


# ----------------------------------------------------------------------------- kept responses
def stored(store: ResponseStore, name: str, text: str) -> bool:
    items = [{"type": "message", "role": "user", "content": text}]
    return store.put({"id": name, "object": "response"}, items, slice(0, 1))


def test_the_store_forgets_the_least_recently_used_first() -> None:
    store = ResponseStore(max_bytes=300)  # two of these, not three
    assert stored(store, "a", "x" * 50) and stored(store, "b", "y" * 50)
    assert store.conversation("a") is not None  # "a" is now the more recently used
    assert stored(store, "c", "z" * 50)
    assert store.response("b") is None
    assert store.response("a") == {"id": "a", "object": "response"}
    assert store.input_items("c") == [{"type": "message", "role": "user", "content": "z" * 50}]


def test_the_store_refuses_one_response_over_its_limit_and_keeps_the_rest() -> None:
    store = ResponseStore(max_bytes=600)
    assert stored(store, "a", "x")
    assert not stored(store, "big", "x" * 600)
    assert store.response("a") is not None and store.response("big") is None
    assert store.delete("a") and not store.delete("a")


def test_a_store_may_keep_a_few_responses_only() -> None:
    kept = ResponseStore(max_bytes=10_000, max_count=3)
    for n in range(5):
        assert stored(kept, f"r{n}", str(n))
    assert kept.response("r0") is None and kept.response("r1") is None
    assert [kept.input_items(f"r{n}") is not None for n in range(2, 5)] == [True] * 3


def test_stores_sharing_a_budget_never_pass_it_together() -> None:
    size = len(json.dumps({"id": "a0", "object": "response"}, separators=(",", ":"))) + len(
        json.dumps(
            [{"type": "message", "role": "user", "content": "x" * 50}], separators=(",", ":")
        )
    )
    budget = ByteBudget(limit=size * 3)
    first, second = (ResponseStore(10_000, budget=budget) for _ in range(2))
    assert stored(first, "a0", "x" * 50) and stored(first, "a1", "x" * 50)
    assert stored(second, "b0", "x" * 50)
    assert budget.used == size * 3
    assert stored(second, "b1", "x" * 50)  # room made from its own oldest
    assert second.response("b0") is None and first.response("a0") is not None
    assert budget.used == size * 3
    third = ResponseStore(10_000, budget=budget)
    assert not stored(third, "c0", "x" * 50)  # the others hold it all: not kept
    first.clear()
    assert budget.used == size and stored(third, "c0", "x" * 50)


# ------------------------------------------------------------------ kept responses on disk
def on_disk(folder: Path, max_bytes: int = 100_000) -> ResponseStore:
    return ResponseStore(max_bytes, shelf=DiskShelf(folder))


def with_item(store: ResponseStore, name: str, text: str, item: str) -> int:
    """Keep a response of one item; its size as the store counts it."""
    response = {"id": name, "object": "response"}
    conversation = [{"type": "message", "role": "user", "content": text, "id": item}]
    assert store.put(response, conversation, slice(0, 1))
    return len(json.dumps(response, separators=(",", ":"))) + len(
        json.dumps(conversation, separators=(",", ":"))
    )


def test_responses_on_disk_outlive_their_store(tmp_path: Path) -> None:
    first = on_disk(tmp_path)
    with_item(first, "resp_a1", "hello", "msg_1")
    with_item(first, "resp_b2", "there", "msg_2")
    assert first.delete("resp_b2")
    again = on_disk(tmp_path)  # what a restart reads
    assert again.response("resp_a1") == {"id": "resp_a1", "object": "response"}
    assert again.input_items("resp_a1") == [
        {"type": "message", "role": "user", "content": "hello", "id": "msg_1"}
    ]
    assert list(again.items(["msg_1", "msg_2"])) == ["msg_1"]
    assert again.response("resp_b2") is None
    assert sorted(path.name for path in tmp_path.iterdir()) == ["resp_a1.jsonl"]


def test_evictions_on_disk_follow_use_across_restarts(tmp_path: Path) -> None:
    size = BLOCK  # each of these takes one block of the disk
    bound = size * 5 // 2  # two of these, not three
    store = on_disk(tmp_path, max_bytes=bound)
    with_item(store, "resp_a", "x" * 40, "msg_a")
    time.sleep(0.05)  # modification times tell the order of use
    with_item(store, "resp_b", "y" * 40, "msg_b")
    time.sleep(0.05)
    assert store.conversation("resp_a") is not None  # now the more recently used
    restarted = on_disk(tmp_path, max_bytes=bound)
    with_item(restarted, "resp_c", "z" * 40, "msg_c")
    assert restarted.response("resp_b") is None and restarted.items(["msg_b"]) == {}
    time.sleep(0.05)
    assert restarted.response("resp_a") is not None
    assert not (tmp_path / "resp_b.jsonl").exists()
    # a smaller bound at the next start evicts down to it ("resp_a" was read last)
    time.sleep(0.05)
    smaller = on_disk(tmp_path, max_bytes=size * 3 // 2)
    assert [smaller.response(n) is not None for n in ("resp_a", "resp_c")] == [True, False]


def test_damaged_files_and_leftovers_are_removed_not_served(tmp_path: Path) -> None:
    store = on_disk(tmp_path)
    with_item(store, "resp_a", "kept", "msg_a")
    with_item(store, "resp_b", "torn", "msg_b")
    with_item(store, "resp_c", "cut", "msg_c")
    (tmp_path / ".resp-0123").write_bytes(b"half a write")
    two_hours_ago = time.time() - 7200
    os.utime(tmp_path / ".resp-0123", (two_hours_ago, two_hours_ago))
    (tmp_path / ".resp-4567").write_bytes(b"another server's write under way")
    (tmp_path / "resp_b.jsonl").write_bytes(b'{"id": "resp_b", "si')  # a torn header
    restarted = on_disk(tmp_path)
    assert not (tmp_path / ".resp-0123").exists() and not (tmp_path / "resp_b.jsonl").exists()
    assert (tmp_path / ".resp-4567").exists()
    assert restarted.response("resp_b") is None
    path = tmp_path / "resp_c.jsonl"
    path.write_bytes(path.read_bytes()[:-20])  # damaged after the start
    assert restarted.conversation("resp_c") is None and not path.exists()
    assert restarted.conversation("resp_a") is not None


def test_a_disk_that_refuses_a_write_keeps_nothing_half_written(tmp_path: Path) -> None:
    blocked = tmp_path / "responses"
    blocked.write_bytes(b"")  # a file where the folder should be
    store = on_disk(blocked)
    assert not store.put({"id": "resp_a", "object": "response"}, [], slice(0, 0))
    assert store.response("resp_a") is None
    assert blocked.read_bytes() == b""


def test_input_items_get_ids_and_openais_shape() -> None:
    [message] = with_ids("Hi") or []
    assert message["id"].startswith("msg_") and message["status"] == "completed"
    assert message["content"] == [{"type": "input_text", "text": "Hi"}]
    items = with_ids(
        [
            {"role": "assistant", "content": "Hello"},
            {"type": "function_call_output", "call_id": "c", "output": "sunny"},
            {"type": "message", "id": "msg_mine", "role": "user", "content": "x"},
            {"type": "item_reference", "id": "msg_other"},
        ]
    )
    assert items is not None
    assert items[0]["content"] == [{"type": "output_text", "text": "Hello", "annotations": []}]
    assert items[1]["id"].startswith("fco_")
    assert items[2]["id"] == "msg_mine"
    assert items[3] == {"type": "item_reference", "id": "msg_other"}  # left to the parser
    assert with_ids(5) is None
    # ids are the client's where they can page: strings, each named once
    odd = with_ids(
        [
            {"role": "user", "content": "a", "id": "msg_same"},
            {"role": "user", "content": "b", "id": "msg_same"},
            {"role": "user", "content": "c", "id": 5},
        ]
    )
    assert odd is not None
    ids = [item["id"] for item in odd]
    assert ids[0] == "msg_same" and len(set(ids)) == 3
    assert all(isinstance(name, str) for name in ids)


def test_a_second_store_on_the_same_folder_finds_what_the_first_kept(tmp_path: Path) -> None:
    first, second = on_disk(tmp_path), on_disk(tmp_path)  # two servers on one home
    with_item(first, "resp_a", "hello", "msg_1")
    assert second.response("resp_a") == {"id": "resp_a", "object": "response"}
    assert second.delete("resp_a") and first.response("resp_a") is None


def test_a_file_that_cannot_be_read_or_removed_now_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = on_disk(tmp_path)
    with_item(store, "resp_a", "hello", "msg_1")
    path = tmp_path / "resp_a.jsonl"

    def refuse(self: Path, *args: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(PowerError) as unread:
        store.response("resp_a")
    assert unread.value.http_status == 500
    monkeypatch.undo()
    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.raises(PowerError):
        store.delete("resp_a")
    monkeypatch.undo()
    assert path.exists() and store.response("resp_a") is not None  # nothing was lost


def test_files_that_lie_are_removed(tmp_path: Path) -> None:
    store = on_disk(tmp_path)
    with_item(store, "resp_a", "hello", "msg_1")
    with_item(store, "resp_b", "there", "msg_2")
    (tmp_path / "resp_b.jsonl").write_bytes((tmp_path / "resp_a.jsonl").read_bytes())
    (tmp_path / "resp_c.jsonl").mkdir()  # a folder where a file would be
    restarted = on_disk(tmp_path)
    assert restarted.response("resp_b") is None and not (tmp_path / "resp_b.jsonl").exists()
    assert restarted.response("resp_c") is None
    assert restarted.response("resp_a") is not None

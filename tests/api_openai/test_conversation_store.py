"""The conversations' append-only logs without a server: two stores on one folder (two
servers on one home), lines a crash cut short, logs written anew, damaged files, limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from power_api_openai.conversation_store import (
    ConversationFull,
    ConversationNotFound,
    ConversationStore,
)
from power_core.errors import PowerError


def message(text: str, item: str | None = None) -> dict[str, Any]:
    listed = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return {**listed, "id": item or f"msg_{text}"}


def texts(store: ConversationStore, conversation_id: str) -> list[str]:
    return [item["content"][0]["text"] for item in store.get(conversation_id).items]


def test_a_change_appends_one_line_and_another_store_reads_only_the_tail(tmp_path: Path) -> None:
    first, second = ConversationStore(tmp_path, 1 << 20), ConversationStore(tmp_path, 1 << 20)
    conversation = first.create([message("a")], {"k": "v"})
    path = tmp_path / f"{conversation.id}.jsonl"
    assert texts(second, conversation.id) == ["a"]  # the second caches what it read
    lines_before = path.read_text().count("\n")
    first.append(conversation.id, [message("b")])
    second.append(conversation.id, [message("c"), message("d")])
    assert path.read_text().count("\n") == lines_before + 2  # one line per change
    for store in (first, second):
        assert texts(store, conversation.id) == ["a", "b", "c", "d"]
    second.set_metadata(conversation.id, {"k": "w"})
    assert first.get(conversation.id).metadata == {"k": "w"}
    first.delete_item(conversation.id, "msg_b")
    assert texts(second, conversation.id) == ["a", "c", "d"]
    second.delete(conversation.id)
    with pytest.raises(ConversationNotFound):
        first.get(conversation.id)
    with pytest.raises(ConversationNotFound):
        first.append(conversation.id, [message("e")])


def test_ids_already_held_are_made_new_and_a_deleted_items_place_is_remembered(
    tmp_path: Path,
) -> None:
    store = ConversationStore(tmp_path, 1 << 20)
    conversation = store.create([message("a", "msg_same")], {})
    [added] = store.append(conversation.id, [message("b", "msg_same")])
    assert added["id"] != "msg_same" and added["id"].startswith("msg_")
    store.delete_item(conversation.id, "msg_same")
    held = store.get(conversation.id)
    assert "msg_same" in held.positions and held.positions["msg_same"] < held.positions[added["id"]]


def test_a_line_a_crash_cut_short_is_not_read_and_the_next_change_cuts_it_off(
    tmp_path: Path,
) -> None:
    store = ConversationStore(tmp_path, 1 << 20)
    conversation = store.create([message("a")], {})
    path = tmp_path / f"{conversation.id}.jsonl"
    with open(path, "ab") as log:
        log.write(b'{"add": [{"type": "message", "id": "msg_torn", "ro')
    fresh = ConversationStore(tmp_path, 1 << 20)
    assert texts(fresh, conversation.id) == ["a"]
    fresh.append(conversation.id, [message("b")])
    assert [json.loads(line) for line in path.read_text().splitlines()][-1]["add"][0]["id"] == (
        "msg_b"
    )
    assert texts(ConversationStore(tmp_path, 1 << 20), conversation.id) == ["a", "b"]


def test_a_log_mostly_deleted_is_written_anew_and_other_readers_follow(tmp_path: Path) -> None:
    writer, reader = ConversationStore(tmp_path, 1 << 22), ConversationStore(tmp_path, 1 << 22)
    conversation = writer.create([message(f"{n:03}" + "x" * 2000) for n in range(20)], {})
    for n in range(4):
        writer.append(conversation.id, [message(f"late{n}")])
    path = tmp_path / f"{conversation.id}.jsonl"
    assert len(texts(reader, conversation.id)) == 24
    before = path.stat()
    for n in range(20):
        writer.delete_item(conversation.id, f"msg_{n:03}" + "x" * 2000)
    after = path.stat()
    assert after.st_ino != before.st_ino and after.st_size < before.st_size // 4
    assert texts(reader, conversation.id) == [f"late{n}" for n in range(4)]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # nothing left aside


def test_a_conversation_may_not_grow_past_the_limit(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, 2500)
    with pytest.raises(ConversationFull):
        store.create([message("x" * 3000)], {})
    conversation = store.create([message("a")], {})
    store.append(conversation.id, [message("b" * 1000)])
    with pytest.raises(ConversationFull) as full:
        store.append(conversation.id, [message("c" * 1500)])
    assert full.value.http_status == 400 and full.value.param == "conversation_id"
    assert texts(store, conversation.id) == ["a", "b" * 1000]
    # a response's items go in all the same: its conversation had room when it began
    store.append(conversation.id, [message("c" * 1500)], limit_param=None)
    assert len(texts(store, conversation.id)) == 3
    assert [p.name for p in tmp_path.iterdir()] == [f"{conversation.id}.jsonl"]
    with pytest.raises(ConversationFull):
        store.check_room(store.get(conversation.id), "conversation")


@pytest.mark.parametrize(
    "damage",
    [
        b"not json\n",
        b'{"id": "conv_other", "created_at": 1, "metadata": {}}\n',
        b'{"id": "ID", "created_at": 1, "metadata": {}}\n{"add": null}\n',
        b'{"id": "ID", "created_at": 1, "metadata": {}}\n{"add": [5]}\n',
        b'{"id": "ID", "created_at": 1, "metadata": {}}\n{"rename": "x"}\n',
    ],
)
def test_a_damaged_log_is_a_server_error_that_names_no_path(tmp_path: Path, damage: bytes) -> None:
    store = ConversationStore(tmp_path, 1 << 20)
    conversation = store.create([], {})
    path = tmp_path / f"{conversation.id}.jsonl"
    path.write_bytes(damage.replace(b"ID", conversation.id.encode()))
    with pytest.raises(PowerError) as damaged:
        ConversationStore(tmp_path, 1 << 20).get(conversation.id)
    assert damaged.value.http_status == 500
    assert str(tmp_path) not in damaged.value.message and "damaged" in damaged.value.message

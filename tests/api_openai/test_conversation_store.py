"""The conversations' append-only logs without a server: two stores on one folder (two
servers on one home), lines a crash cut short, logs written anew, damaged files, limits."""

from __future__ import annotations

import json
import os
import time
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
    conversation = writer.create(
        [message(f"{n:03}" + "x" * 5000, f"msg_{n:03}") for n in range(20)], {}
    )
    for n in range(4):
        writer.append(conversation.id, [message(f"late{n}")])
    path = tmp_path / f"{conversation.id}.jsonl"
    assert len(texts(reader, conversation.id)) == 24
    before = path.stat()
    for n in range(20):
        writer.delete_item(conversation.id, f"msg_{n:03}")
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


# ---------------------------------------------------------------------- from a second review
def test_a_log_written_anew_in_place_is_read_anew(tmp_path: Path) -> None:
    # the same inode, a longer file: only the first line's generation tells (ext4 reuses
    # a freed inode for the next file written aside)
    writer, reader = ConversationStore(tmp_path, 1 << 20), ConversationStore(tmp_path, 1 << 20)
    conversation = writer.create([message("a")], {"k": "1"})
    assert reader.get(conversation.id).metadata == {"k": "1"}
    path = tmp_path / f"{conversation.id}.jsonl"
    renewed = writer.get(conversation.id)
    renewed.metadata = {"k": "2"}
    lines = [renewed.header(), {"add": renewed.items, "at": [0]}, {"add": [message("b")]}]
    with open(path, "r+b") as log:  # the same file, other bytes
        log.write(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
        log.truncate()
    again = reader.get(conversation.id)
    assert again.metadata == {"k": "2"} and [i["id"] for i in again.items] == ["msg_a", "msg_b"]


def test_places_only_grow_and_outlive_a_log_written_anew(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, 1 << 22)
    conversation = store.create([message(f"{n}" + "x" * 5000, f"msg_{n}") for n in range(20)], {})
    store.delete_item(conversation.id, "msg_1")
    [again] = store.append(conversation.id, [message("back", "msg_1")])
    assert again["id"] == "msg_1"
    held = store.get(conversation.id)
    assert held.positions["msg_1"] == 20 and held.next_position == 21
    for n in range(2, 20):  # the log is written anew on the way
        store.delete_item(conversation.id, f"msg_{n}")
    fresh = ConversationStore(tmp_path, 1 << 22).get(conversation.id)
    assert (tmp_path / f"{conversation.id}.jsonl").stat().st_size < 10_000  # was ~100 KB
    assert [fresh.positions[i] for i in ("msg_0", "msg_1", "msg_7")] == [0, 20, 7]
    assert [i["id"] for i in fresh.items] == ["msg_0", "msg_1"]


def test_metadata_updates_do_not_grow_a_log_for_ever(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, 1 << 20)
    conversation = store.create([], {})
    for n in range(200):
        store.set_metadata(conversation.id, {f"k{i}": str(n) * 400 for i in range(16)})
    assert (tmp_path / f"{conversation.id}.jsonl").stat().st_size < 100_000
    assert ConversationStore(tmp_path, 1 << 20).get(conversation.id).metadata["k0"] == "199" * 400


def test_unknown_ids_leave_nothing_behind(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, 1 << 20)
    for n in range(50):
        unknown = f"conv_{n:048x}"
        with pytest.raises(ConversationNotFound):
            store.set_metadata(unknown, {})
        with pytest.raises(ConversationNotFound):
            store.delete(unknown)
        with pytest.raises(ConversationNotFound):
            store.append(unknown, [message("x")])
    assert store._locks == {}


def test_a_log_that_cannot_be_read_now_is_a_500_and_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ConversationStore(tmp_path, 1 << 20)
    conversation = store.create([message("a")], {})
    real_open = open

    def refusing(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).endswith(".jsonl"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refusing)
    with pytest.raises(PowerError) as refused:
        ConversationStore(tmp_path, 1 << 20).get(conversation.id)
    assert refused.value.http_status == 500 and "cannot be read" in refused.value.message
    monkeypatch.undo()
    assert texts(ConversationStore(tmp_path, 1 << 20), conversation.id) == ["a"]


def test_leftovers_are_removed_only_once_old(tmp_path: Path) -> None:
    old, young = tmp_path / ".conv_old.1", tmp_path / ".conv_young.2"
    for path in (old, young):
        path.write_bytes(b"half a log")
    hours_ago = time.time() - 7200
    os.utime(old, (hours_ago, hours_ago))
    ConversationStore(tmp_path, 1 << 20)
    assert not old.exists() and young.exists()

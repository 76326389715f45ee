"""The uploaded files' store on disk: kept across a restart, gone once expired or deleted,
and what crashed writes or damaged descriptions leave is cleared, never served."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest

from power_api_openai import file_store
from power_api_openai.file_store import FileStore
from power_core.errors import InsufficientStorage, NotFound


def test_a_file_outlives_a_restart_until_deleted(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    kept = store.add(io.BytesIO(b"hello"), "a.txt", "user_data", None)
    again = FileStore(tmp_path)  # a new server on the same home
    assert again.get(kept.id) == kept
    assert again.read(kept.id) == (kept, b"hello")
    assert [f.id for f in again.all()] == [kept.id]
    again.delete(kept.id)
    with pytest.raises(NotFound):
        store.get(kept.id)
    assert sorted(os.listdir(tmp_path)) == []


def test_an_expired_file_is_gone(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    old = store.add(io.BytesIO(b"x"), "old.txt", "batch", int(time.time()) - 1)
    new = store.add(io.BytesIO(b"y"), "new.txt", "batch", int(time.time()) + 3600)
    assert [f.id for f in store.all()] == [new.id]
    with pytest.raises(NotFound):
        store.get(old.id)
    assert not (tmp_path / old.id).exists()


def test_leftovers_and_damaged_descriptions_are_cleared(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    kept = store.add(io.BytesIO(b"kept"), "k.txt", "user_data", None)
    damaged = store.add(io.BytesIO(b"d"), "d.txt", "user_data", None)
    (tmp_path / f"{damaged.id}.json").write_text("{not json")
    stale_aside = tmp_path / ".upload-0123"
    stale_bytes = tmp_path / "file-0123456789abcdef01234567"
    fresh_aside = tmp_path / ".upload-4567"
    for path in (stale_aside, stale_bytes, fresh_aside):
        path.write_bytes(b"left")
    hours_ago = time.time() - 2 * file_store.LEFTOVER_AGE
    for path in (stale_aside, stale_bytes):
        os.utime(path, (hours_ago, hours_ago))
    restarted = FileStore(tmp_path)
    assert [f.id for f in restarted.all()] == [kept.id]
    assert not stale_aside.exists() and not stale_bytes.exists()
    assert fresh_aside.exists()  # maybe another server's upload under way
    assert not (tmp_path / damaged.id).exists()
    with pytest.raises(NotFound):
        restarted.get(damaged.id)
    # a description naming another file is not that file
    (tmp_path / f"{kept.id}.json").write_text(
        json.dumps(
            {**json.loads((tmp_path / f"{kept.id}.json").read_text()), "id": "file-" + "0" * 24}
        )
    )
    with pytest.raises(NotFound):
        restarted.get(kept.id)


def test_ids_that_are_no_file_ids_are_not_found(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    for file_id in ("../x", "file-../../etc", "file-ZZ", ""):
        with pytest.raises(NotFound):
            store.get(file_id)


def test_a_full_disk_is_a_507_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path)

    def full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(file_store.shutil, "copyfileobj", full)
    with pytest.raises(InsufficientStorage):
        store.add(io.BytesIO(b"x"), "a.txt", "user_data", None)
    assert os.listdir(tmp_path) == []

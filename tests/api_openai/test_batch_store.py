"""A batch's result logs: read a line at a time, and a last line a crash cut short is cut
off wherever it starts, however long it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from power_api_openai import batch_store
from power_api_openai.batch_store import BatchStore, new_batch_id


@pytest.mark.parametrize("torn_length", [0, 10, 70_000, 200_000])
def test_a_torn_last_line_is_cut_off(
    tmp_path: Path, torn_length: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_store, "_TAIL_BYTES", 4096)  # many reads back for long lines
    store = BatchStore(tmp_path)
    batch_id = new_batch_id()
    store.append_result(batch_id, "out", {"custom_id": "a", "vector": [0.25] * 5000})
    store.append_result(batch_id, "out", {"custom_id": "b"})
    whole = store.results_path(batch_id, "out").read_bytes()
    with open(store.results_path(batch_id, "out"), "ab") as log:
        log.write(b"x" * torn_length)
    assert store.finished(batch_id) == {"out": {"a", "b"}, "err": set()}
    assert store.results_path(batch_id, "out").read_bytes() == whole
    store.append_result(batch_id, "out", {"custom_id": "c"})
    lines = store.results_path(batch_id, "out").read_bytes().splitlines()
    assert [json.loads(line)["custom_id"] for line in lines] == ["a", "b", "c"]


def test_a_log_that_is_one_torn_line_is_emptied(tmp_path: Path) -> None:
    store = BatchStore(tmp_path)
    batch_id = new_batch_id()
    store.results_path(batch_id, "err").parent.mkdir(parents=True, exist_ok=True)
    store.results_path(batch_id, "err").write_bytes(b'{"custom_id": "a", "resp')
    assert store.finished(batch_id) == {"out": set(), "err": set()}
    assert store.results_path(batch_id, "err").read_bytes() == b""
    assert store.synced_results(batch_id, "err") is None

"""The batch runner's states across what a server lives through: a stop mid-result, a
resume, a server that turns requests away, a cancel at each step, an input file deleted,
two servers on one home. The routes a batch sends to are a small Flask app here (the real
server's are in test_sdk_batches.py); what is under test is the runner."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify, request

from power_api_openai import batch_requests
from power_api_openai.batch_runs import BatchRuns, new_batch
from power_api_openai.batch_store import BatchStore, new_batch_id
from power_api_openai.file_store import FileStore

URL = "/v1/embeddings"


class Endpoint:
    """A route answering each request with its input; ``refusals`` 503s come first."""

    def __init__(self) -> None:
        self.app = Flask("endpoint")
        self.seen: list[str] = []
        self.refusals = 0
        self.gate = threading.Event()
        self.gate.set()

        @self.app.post(URL)
        def embed() -> Any:
            body = request.get_json()
            if self.refusals > 0:
                self.refusals -= 1
                return jsonify(error={"message": "queue full"}), 503
            self.gate.wait(30)
            self.seen.append(body["input"])
            return jsonify(
                object="list", data=[{"embedding": [0.5], "index": 0}], echo=body["input"]
            )


@pytest.fixture
def endpoint() -> Endpoint:
    return Endpoint()


def make_batch(home: Path, count: int) -> tuple[BatchRuns, str]:
    files = FileStore(home / "files")
    store = BatchStore(home / "batches")
    lines = [
        {"custom_id": f"r{i}", "method": "POST", "url": URL, "body": {"input": f"q{i}"}}
        for i in range(count)
    ]
    data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    input_file = files.add(io.BytesIO(data), "in.jsonl", "batch", None)
    batch = new_batch(new_batch_id(), input_file.id, URL, None)
    store.save(batch)
    return BatchRuns(store, files, parallel=3, api_key=None), batch["id"]


def stopped_after_one(runs: BatchRuns, batch_id: str) -> BatchStore:
    """The batch as a server's stop leaves it: in progress, the result of ``r0`` logged."""
    store = runs.store
    store.save({**store.get(batch_id), "status": "in_progress"})
    store.append_result(batch_id, "out", {"custom_id": "r0", "response": {"status_code": 200}})
    return store


def ended(runs: BatchRuns, batch_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        batch = runs.store.get(batch_id)
        if batch["status"] in ("completed", "failed", "cancelled", "expired"):
            return batch
        assert time.monotonic() < deadline, batch["status"]
        time.sleep(0.02)


def output(runs: BatchRuns, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [json.loads(line) for line in runs.files.read(file_id)[1].splitlines()]


def test_a_resumed_batch_counts_from_its_logs_and_mends_a_torn_line(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    runs, batch_id = make_batch(tmp_path, 5)
    # a stop left two results, the second cut short, and counts saved before either
    store = stopped_after_one(runs, batch_id)
    with open(store.results_path(batch_id, "out"), "ab") as log:
        log.write(b'{"custom_id": "r1", "resp')
    runs.resume(endpoint.app)
    batch = ended(runs, batch_id)
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
    lines = output(runs, batch["output_file_id"])
    assert sorted(line["custom_id"] for line in lines) == [f"r{i}" for i in range(5)]
    assert sorted(endpoint.seen) == [f"q{i}" for i in range(1, 5)]  # r0 was not sent again


def test_requests_turned_away_are_sent_again(
    tmp_path: Path, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_requests, "RETRY_WAITS", (0.01, 0.02))
    endpoint.refusals = 4
    runs, batch_id = make_batch(tmp_path, 3)
    runs.start(endpoint.app, batch_id)
    batch = ended(runs, batch_id)
    assert batch["request_counts"] == {"total": 3, "completed": 3, "failed": 0}
    assert batch["error_file_id"] is None


def test_a_cancel_while_validating_holds(tmp_path: Path, endpoint: Endpoint) -> None:
    runs, batch_id = make_batch(tmp_path, 3)
    runs.cancel(batch_id)  # before the runner has read the input
    runs.start(endpoint.app, batch_id)
    batch = ended(runs, batch_id)
    assert batch["status"] == "cancelled" and batch["cancelling_at"] is not None
    assert endpoint.seen == []


def test_a_cancel_once_finalizing_changes_nothing(tmp_path: Path, endpoint: Endpoint) -> None:
    runs, batch_id = make_batch(tmp_path, 2)
    runs.store.save({**runs.store.get(batch_id), "status": "finalizing"})
    assert runs.cancel(batch_id)["status"] == "finalizing"
    runs.start(endpoint.app, batch_id)
    assert ended(runs, batch_id)["status"] == "completed"


def test_a_resumed_batch_whose_input_was_deleted_keeps_what_it_finished(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    runs, batch_id = make_batch(tmp_path, 4)
    store = stopped_after_one(runs, batch_id)
    runs.files.delete(store.get(batch_id)["input_file_id"])
    runs.resume(endpoint.app)
    batch = ended(runs, batch_id)
    assert batch["status"] == "failed"
    assert batch["errors"]["data"][0]["code"] == "invalid_input_file"
    assert [line["custom_id"] for line in output(runs, batch["output_file_id"])] == ["r0"]
    assert not store.results_path(batch_id, "out").exists()


def test_two_servers_on_one_home_run_a_batch_once(tmp_path: Path, endpoint: Endpoint) -> None:
    runs, batch_id = make_batch(tmp_path, 6)
    other = BatchRuns(BatchStore(tmp_path / "batches"), runs.files, parallel=3, api_key=None)
    endpoint.gate.clear()
    runs.start(endpoint.app, batch_id)
    time.sleep(0.2)
    other.start(endpoint.app, batch_id)  # finds it running, leaves it
    time.sleep(0.2)
    endpoint.gate.set()
    batch = ended(runs, batch_id)
    assert sorted(endpoint.seen) == [f"q{i}" for i in range(6)]
    assert len(output(runs, batch["output_file_id"])) == 6

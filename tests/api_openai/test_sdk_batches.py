"""OpenAI's Batch API through the official ``openai`` SDK, unchanged: a file of requests
runs in the server, each answered as the same request sent alone is; a bad input file fails
the batch with its lines named; a batch can be cancelled, and goes on after a restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from api_openai.wire_reading import MODEL
from conftest import PowerServer, import_test_model

pytestmark = pytest.mark.model

ENDPOINT = "/v1/chat/completions"


def chat_body(question: str, model: str = MODEL, max_tokens: int = 8) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def request_line(custom_id: str, body: dict[str, Any], url: str = ENDPOINT) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def upload(client: OpenAI, data: bytes) -> str:
    return client.files.create(file=("requests.jsonl", data), purpose="batch").id  # type: ignore[arg-type]


def finished(client: OpenAI, batch_id: str, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "cancelled", "expired"):
            return batch
        assert time.monotonic() < deadline, f"batch still {batch.status}"
        time.sleep(0.2)


def results(client: OpenAI, file_id: str | None) -> dict[str, dict[str, Any]]:
    if file_id is None:
        return {}
    lines = client.files.content(file_id).read().decode().splitlines()
    return {line["custom_id"]: line for line in map(json.loads, lines)}


def test_a_batch_answers_each_request_as_it_is_answered_alone(client: OpenAI) -> None:
    questions = {"colour": "Name a colour.", "animal": "Name an animal."}
    lines = [request_line(key, chat_body(q)) for key, q in questions.items()]
    lines.append(request_line("nobody", chat_body("Hi", model="no-such-model:1b")))
    batch = client.batches.create(
        input_file_id=upload(client, jsonl(lines)),
        endpoint=ENDPOINT,
        completion_window="24h",
        metadata={"job": "test"},
    )
    assert batch.status in ("validating", "in_progress") and batch.metadata == {"job": "test"}
    done = finished(client, batch.id)
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (3, 2)
    assert done.request_counts.failed == 1
    assert done.completed_at is not None and done.in_progress_at is not None
    answered = results(client, done.output_file_id)
    assert set(answered) == set(questions)
    for key, question in questions.items():
        line = answered[key]
        assert line["id"].startswith("batch_req_") and line["error"] is None
        assert line["response"]["status_code"] == 200
        body = line["response"]["body"]
        alone = client.chat.completions.create(**chat_body(question))  # type: ignore[call-overload]
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["content"] == alone.choices[0].message.content
    prompt_tokens = sum(
        line["response"]["body"]["usage"]["prompt_tokens"] for line in answered.values()
    )
    completion_tokens = sum(
        line["response"]["body"]["usage"]["completion_tokens"] for line in answered.values()
    )
    assert done.usage is not None
    assert (done.usage.input_tokens, done.usage.output_tokens) == (prompt_tokens, completion_tokens)
    assert done.usage.total_tokens == prompt_tokens + completion_tokens
    failed = results(client, done.error_file_id)
    assert failed["nobody"]["response"]["status_code"] == 404
    assert "no-such-model" in failed["nobody"]["response"]["body"]["error"]["message"]
    listed = [b.id for b in client.batches.list(limit=1)]  # every page, newest first
    assert listed[0] == batch.id


def test_a_bad_input_file_fails_the_batch_naming_its_lines(client: OpenAI) -> None:
    lines = [
        json.dumps(request_line("a", chat_body("Hi"))).encode(),
        b"{not json",
        json.dumps(request_line("a", chat_body("Hi again"))).encode(),  # the same custom_id
        json.dumps(request_line("b", chat_body("Hi"), url="/v1/completions")).encode(),
        json.dumps(request_line("c", {**chat_body("Hi"), "stream": True})).encode(),
    ]
    batch = client.batches.create(
        input_file_id=upload(client, b"\n".join(lines)),
        endpoint=ENDPOINT,
        completion_window="24h",
    )
    done = finished(client, batch.id)
    assert done.status == "failed" and done.failed_at is not None
    assert done.errors is not None and done.errors.data is not None
    found = [(e.line, e.code) for e in done.errors.data]
    assert found == [
        (2, "invalid_json_line"),
        (3, "duplicate_custom_id"),
        (4, "mismatched_url"),
        (5, "invalid_request"),
    ]
    assert done.output_file_id is None and done.request_counts is not None
    assert done.request_counts.total == 0


def test_what_cannot_start_a_batch_is_a_400(client: OpenAI) -> None:
    data = jsonl([request_line("a", chat_body("Hi"))])
    not_batch = client.files.create(file=("r.jsonl", data), purpose="user_data").id  # type: ignore[arg-type]
    good = upload(client, data)
    for options, param in (
        ({"input_file_id": not_batch}, "input_file_id"),
        ({"input_file_id": "file-" + "0" * 24}, "input_file_id"),
        ({"input_file_id": good, "endpoint": "/v1/models"}, "endpoint"),
        ({"input_file_id": good, "completion_window": "1h"}, "completion_window"),
    ):
        arguments = {"endpoint": ENDPOINT, "completion_window": "24h", **options}
        with pytest.raises(openai.BadRequestError) as refused:
            client.batches.create(**arguments)  # type: ignore[arg-type]
        assert refused.value.param == param
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_" + "0" * 24)


def test_a_cancelled_batch_ends_with_what_it_finished(client: OpenAI) -> None:
    lines = [request_line(f"r{i}", chat_body(f"Count to {i}.", max_tokens=48)) for i in range(24)]
    batch = client.batches.create(
        input_file_id=upload(client, jsonl(lines)), endpoint=ENDPOINT, completion_window="24h"
    )
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    done = finished(client, batch.id)
    assert done.status == "cancelled" and done.cancelled_at is not None
    assert done.request_counts is not None and done.request_counts.completed < 24
    assert len(results(client, done.output_file_id)) == done.request_counts.completed


@pytest.fixture
def restarted_server(tmp_path: Path) -> Iterator[PowerServer]:
    server = PowerServer(tmp_path / "home", num_parallel="1", num_ctx="2048")
    import_test_model(server.env)
    server.start()
    yield server
    server.stop()


def test_a_batch_goes_on_after_a_restart(restarted_server: PowerServer) -> None:
    server = restarted_server
    client = OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=120)
    count = 16
    lines = [request_line(f"r{i}", chat_body(f"Say {i}.", max_tokens=48)) for i in range(count)]
    batch = client.batches.create(
        input_file_id=upload(client, jsonl(lines)), endpoint=ENDPOINT, completion_window="24h"
    )
    deadline = time.monotonic() + 120
    while client.batches.retrieve(batch.id).request_counts.completed < 2:  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    server.stop()
    stopped = json.loads((server.home / "batches" / f"{batch.id}.json").read_text())
    assert stopped["status"] == "in_progress"  # stopped partway: the rest runs after a start
    assert 2 <= stopped["request_counts"]["completed"] < count
    server.start()
    done = finished(client, batch.id)
    assert done.status == "completed", done
    answered = results(client, done.output_file_id)
    assert sorted(answered) == sorted(f"r{i}" for i in range(count))  # each once
    assert done.request_counts is not None and done.request_counts.completed == count

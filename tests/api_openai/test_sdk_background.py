"""Background responses (``background: true``) through the official ``openai`` SDK,
unchanged, on the real SmolLM2 model: polled to the end, cancelled midway, streamed and
followed again after the client left, and kept like any other response."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
import requests
from openai import OpenAI

from api_openai.wire_reading import MODEL, NO_EOS, assert_error_shape
from conftest import PowerServer

pytestmark = pytest.mark.model

#: an answer that runs its whole length (no end-of-text token can be sampled)
LONG: dict[str, Any] = {
    "model": MODEL,
    "max_output_tokens": 1500,
    "extra_body": {"logit_bias": NO_EOS},
}
TERMINAL = ("completed", "incomplete", "failed", "cancelled")


def polled(client: OpenAI, response_id: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        response = client.responses.retrieve(response_id)
        if response.status in TERMINAL:
            return response
        assert time.monotonic() < deadline, f"still {response.status}"
        time.sleep(0.1)


def test_a_background_response_is_polled_to_its_end(client: OpenAI) -> None:
    started = client.responses.create(
        model=MODEL, input="Name a fruit.", background=True, temperature=0, max_output_tokens=16
    )
    assert started.background is True and started.status in ("queued", "in_progress")
    assert started.output == []
    final = polled(client, started.id)
    assert final.status in ("completed", "incomplete") and final.output_text
    assert final.background is True and final.usage is not None
    # the same request answered in the foreground
    plain = client.responses.create(
        model=MODEL, input="Name a fruit.", temperature=0, max_output_tokens=16, store=False
    )
    assert final.output_text == plain.output_text
    continued = client.responses.create(
        model=MODEL, input="Another?", previous_response_id=started.id, max_output_tokens=4
    )
    assert continued.previous_response_id == started.id


def test_a_background_response_is_cancelled_midway(
    client: OpenAI, power_server: PowerServer
) -> None:
    started = client.responses.create(input="Tell a long story.", background=True, **LONG)
    deadline = time.monotonic() + 60
    while not client.responses.retrieve(started.id).output:  # it is generating
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cancelled = client.responses.cancel(started.id)
    assert cancelled.status == "cancelled"
    kept = client.responses.retrieve(started.id)
    assert kept.status == "cancelled" and 0 < len(kept.output_text) < 6000
    assert client.responses.cancel(started.id).status == "cancelled"  # as it ended
    deadline = time.monotonic() + 30
    while power_server.active_requests():  # its sequence is free
        assert time.monotonic() < deadline, "the cancelled generation holds its sequence"
        time.sleep(0.05)


def test_a_background_stream_goes_on_after_its_client_leaves_and_is_followed_again(
    client: OpenAI, v1: str
) -> None:
    events = client.responses.create(
        model=MODEL,
        input="Name a fruit.",
        background=True,
        stream=True,
        max_output_tokens=48,
        temperature=0,
        extra_body={"logit_bias": NO_EOS},
    )
    seen = []
    for event in events:
        seen.append(event)
        if len(seen) == 5:
            break
    events.close()  # the client leaves; the run does not
    response_id = seen[0].response.id  # type: ignore[union-attr]
    final = polled(client, response_id)
    assert final.status == "incomplete" and final.usage.output_tokens == 48  # type: ignore[union-attr]
    # followed again from the event after the last one seen
    resumed = client.responses.retrieve(
        response_id, stream=True, starting_after=seen[-1].sequence_number
    )
    rest = list(resumed)
    assert rest[0].sequence_number == seen[-1].sequence_number + 1
    assert rest[-1].type == "response.incomplete"
    text = "".join(
        e.delta
        for e in [*seen, *rest]
        if e.type == "response.output_text.delta"  # type: ignore[union-attr]
    )
    assert text == final.output_text
    # a response that did not run in the background cannot be streamed again
    plain = client.responses.create(model=MODEL, input="Hi", max_output_tokens=2)
    refused = requests.get(f"{v1}/responses/{plain.id}", params={"stream": "true"}, timeout=60)
    assert_error_shape(refused, 400, "stream")


def test_background_needs_store_and_http(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as unstored:
        client.responses.create(model=MODEL, input="Hi", background=True, store=False)
    assert unstored.value.param == "store"
    plain = client.responses.create(model=MODEL, input="Hi", max_output_tokens=2)
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(plain.id)  # it did not run in the background
    with client.responses.connect() as connection:
        connection.response.create(model=MODEL, input="Hi", background=True)
        for event in connection:
            assert event.type == "error" and "background" in event.error.message  # type: ignore[union-attr]
            break


def test_a_cancelled_run_adds_nothing_to_its_conversation_and_a_deleted_one_is_gone(
    client: OpenAI, v1: str
) -> None:
    conversation = client.conversations.create(items=[{"role": "user", "content": "Hi."}])
    started = client.responses.create(
        input="Tell a long story.", background=True, conversation=conversation.id, **LONG
    )
    deadline = time.monotonic() + 60
    while not client.responses.retrieve(started.id).output:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.responses.cancel(started.id).status == "cancelled"
    assert len(client.conversations.items.list(conversation.id).data) == 1
    client.responses.delete(started.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(started.id)
    gone = requests.get(f"{v1}/responses/{started.id}", params={"stream": "true"}, timeout=60)
    assert_error_shape(gone, 400, "stream")

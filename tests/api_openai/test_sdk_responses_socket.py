"""The WebSocket mode of the Responses API (``ws://.../v1/responses``) through the official
``openai`` SDK's ``client.responses.connect()``, unchanged, against the real SmolLM2 model;
and its wire read with the ``websockets`` library the SDK itself uses."""

from __future__ import annotations

import json
import signal
import socket as socket_module
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from openai import OpenAI
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from api_openai.test_sdk_responses import WEATHER_TOOL
from api_openai.wire_reading import KEYS, MODEL, NO_EOS
from conftest import PowerServer, serving_test_model

pytestmark = pytest.mark.model

FINAL = ("response.completed", "response.incomplete", "response.failed", "error")
GREEDY: dict[str, Any] = {"model": MODEL, "temperature": 0, "max_output_tokens": 16}


def events_until_final(connection: Any) -> list[Any]:
    """The SDK's events of one response, up to its last (or an ``error``)."""
    events = []
    for event in connection:
        events.append(event)
        if event.type in FINAL:
            return events
    raise AssertionError(f"the connection ended after {[e.type for e in events]}")


def answer(connection: Any, **fields: Any) -> Any:
    """Send ``response.create`` with :data:`GREEDY` and ``fields``: its final response."""
    connection.response.create(**{**GREEDY, **fields})
    final = events_until_final(connection)[-1]
    assert final.type in ("response.completed", "response.incomplete"), final
    return final.response


def stateless_usage(client: OpenAI, items: list[Any], **fields: Any) -> Any:
    """The usage of ``POST /v1/responses`` with the whole conversation in ``input``."""
    reply = client.responses.create(**{**GREEDY, **fields}, input=items)
    assert reply.usage is not None
    return reply.usage


def dumped(items: list[Any]) -> list[dict[str, Any]]:
    """Output items as a client would send them back in ``input``."""
    return [item.model_dump(exclude_none=True) for item in items]


def test_a_response_streams_the_events_of_an_sse_stream(client: OpenAI) -> None:
    with client.responses.connect() as connection:
        connection.response.create(**GREEDY, input="Count: 1, 2, 3,", metadata={"n": "1"})
        events = events_until_final(connection)
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    final = events[-1].response
    assert len(deltas) == 16
    assert "".join(deltas) == final.output_text != ""
    assert final.id == events[0].response.id
    assert final.metadata == {"n": "1"}
    assert final.previous_response_id is None
    assert final.usage is not None and final.usage.output_tokens == 16


def test_previous_response_id_continues_the_conversation_the_connection_holds(
    client: OpenAI,
) -> None:
    question = [{"role": "user", "content": "Name a fruit."}]
    follow_up = [{"role": "user", "content": "And a vegetable?"}]
    with client.responses.connect() as connection:
        first = answer(connection, input=question, instructions="Be brief.")
        second = answer(connection, input=follow_up, previous_response_id=first.id)
        third = answer(connection, input="One more?", previous_response_id=second.id)
    assert second.previous_response_id == first.id
    assert third.previous_response_id == second.id
    # the same prompt as the whole conversation sent over HTTP (instructions are not carried
    # over, as OpenAI does not carry them)
    whole = [*question, *dumped(first.output), *follow_up]
    assert second.usage.input_tokens == stateless_usage(client, whole).input_tokens
    whole = [*whole, *dumped(second.output), {"role": "user", "content": "One more?"}]
    assert third.usage.input_tokens == stateless_usage(client, whole).input_tokens
    # each turn reads only what is new: the conversation so far is in the model's cache
    assert third.usage.input_tokens_details.cached_tokens > second.usage.input_tokens / 2


def test_a_function_call_and_its_output_continue_by_id(client: OpenAI) -> None:
    question = "What is the weather in Paris?"
    with client.responses.connect() as connection:
        asked = answer(
            connection,
            input=question,
            tools=[WEATHER_TOOL],
            tool_choice="required",
            max_output_tokens=100,
        )
        [call] = [item for item in asked.output if item.type == "function_call"]
        assert call.name == "get_weather"
        result = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
        # SmolLM2's template shows no tools: the answer may not call one (tool_choice none)
        offered: dict[str, Any] = {"tools": [WEATHER_TOOL], "tool_choice": "none"}
        answered = answer(connection, input=[result], previous_response_id=asked.id, **offered)
    assert answered.output_text
    whole = [{"role": "user", "content": question}, *dumped(asked.output), result]
    usage = stateless_usage(client, whole, **offered)
    assert answered.usage.input_tokens == usage.input_tokens


def test_an_unknown_previous_response_is_not_found_and_the_connection_goes_on(
    client: OpenAI,
) -> None:
    with client.responses.connect() as connection:
        first = answer(connection, input="Hi")
        connection.response.create(**GREEDY, input="Again", previous_response_id="resp_other")
        [error] = events_until_final(connection)
        assert error.type == "error" and error.status == 400
        assert error.error.code == "previous_response_not_found"
        assert error.error.param == "previous_response_id"
        assert error.error.type == "invalid_request_error"
        # the one it holds is still there
        later = answer(connection, input="Again", previous_response_id=first.id)
        assert later.previous_response_id == first.id


def test_a_failed_continuation_forgets_the_response_it_named(client: OpenAI) -> None:
    """As OpenAI's mode does for responses it keeps only on the connection (store false);
    a stored one stays in the server's store."""
    with client.responses.connect() as connection:
        first = answer(connection, input="Hi", store=False)
        connection.response.create(
            **{**GREEDY, "temperature": "hot"}, input="x", previous_response_id=first.id
        )
        [error] = events_until_final(connection)
        assert error.status == 400 and error.error.param == "temperature"
        connection.response.create(**GREEDY, input="x", previous_response_id=first.id)
        [error] = events_until_final(connection)
        assert error.error.code == "previous_response_not_found"


@pytest.mark.parametrize(
    "prepare", [{"generate": False}, {"prompt_cache_options": {"prewarm": True}}]
)
def test_a_prepared_turn_reads_the_prompt_and_can_be_continued(
    client: OpenAI, prepare: dict[str, Any]
) -> None:
    question = [{"role": "user", "content": f"Name a color. {sorted(prepare)}"}]
    with client.responses.connect() as connection:
        connection.response.create(**GREEDY, input=question, **prepare)
        events = events_until_final(connection)
        assert [event.type for event in events] == [
            "response.created",
            "response.in_progress",
            "response.completed",
        ]
        prepared = events[-1].response
        assert prepared.output == []
        assert prepared.usage.input_tokens > 0 and prepared.usage.output_tokens == 0
        follow_up = answer(connection, input=[], previous_response_id=prepared.id)
    assert follow_up.output_text
    assert follow_up.usage.input_tokens == stateless_usage(client, question).input_tokens
    # the prompt was read into the cache: the answer reads at most its last two tokens again
    details = follow_up.usage.input_tokens_details
    assert details.cached_tokens >= follow_up.usage.input_tokens - 2
    assert details.cache_write_tokens == follow_up.usage.input_tokens - details.cached_tokens


def test_lanes_fork_from_one_another(client: OpenAI) -> None:
    with client.responses.connect() as connection:
        first = answer(connection, input="Name a fruit.", stream_id="a")
        other = answer(connection, input="Name a tree.", stream_id="b")
        # either response can be continued, from either lane
        again = answer(connection, input="Another?", previous_response_id=first.id, stream_id="b")
        more = answer(connection, input="Another?", previous_response_id=other.id, stream_id="a")
    assert again.previous_response_id == first.id
    assert more.previous_response_id == other.id


def test_large_events_reach_a_client_that_reads_late(power_server: PowerServer) -> None:
    """Each event is written whole: a frame larger than the socket takes at once was cut
    (simple_websocket sends a frame with one ``send``), its rest lost and the next frame's
    header inside it. A client with a small receive buffer that reads two seconds late,
    read with ``wsproto`` (whose frames are checked) over a plain socket."""
    schema = {"type": "object", "description": "x" * 2_000_000, "properties": {}}
    create = {
        "type": "response.create",
        **GREEDY,
        "input": "Hi",
        "text": {"format": {"type": "json_schema", "name": "big", "schema": schema}},
    }
    raw = socket_module.socket()
    raw.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_RCVBUF, 65536)
    raw.settimeout(60)
    raw.connect(("127.0.0.1", power_server.port))
    protocol = WSConnection(ConnectionType.CLIENT)
    raw.sendall(protocol.send(Request(host="127.0.0.1", target="/v1/responses")))
    events: list[dict[str, Any]] = []
    parts: list[str] = []
    with raw:
        sent = False
        while not events or events[-1]["type"] not in FINAL:
            data = raw.recv(1 << 16)
            assert data, f"the connection ended after {[e['type'] for e in events]}"
            protocol.receive_data(data)
            for event in protocol.events():
                if isinstance(event, AcceptConnection) and not sent:
                    raw.sendall(protocol.send(TextMessage(json.dumps(create))))
                    sent = True
                    time.sleep(2)  # the server writes the first events while nobody reads
                elif isinstance(event, TextMessage):
                    parts.append(event.data)
                    if event.message_finished:
                        events.append(json.loads("".join(parts)))
                        parts = []
    assert events[0]["type"] == "response.created"
    assert len(events[0]["response"]["text"]["format"]["schema"]["description"]) == 2_000_000
    assert events[-1]["type"] in ("response.completed", "response.incomplete")


def test_stream_id_is_echoed_on_every_event(client: OpenAI) -> None:
    with client.responses.connect() as connection:
        connection.response.create(**GREEDY, input="Hi", stream_id="lane-7")
        events = events_until_final(connection)
        connection.response.create(model="no-such-model:1", input="Hi", stream_id="lane-8")
        [error] = events_until_final(connection)
    assert {event.stream_id for event in events} == {"lane-7"}
    assert error.stream_id == "lane-8" and error.status == 404
    assert error.error.code == "model_not_found"


def test_stored_responses_continue_across_http_and_websocket(client: OpenAI) -> None:
    over_http = client.responses.create(**GREEDY, input="Name a fruit.")
    with client.responses.connect() as connection:
        over_socket = answer(connection, input="Another?", previous_response_id=over_http.id)
        unstored = answer(connection, input="Hi", store=False)
    assert over_socket.previous_response_id == over_http.id
    again = client.responses.create(**GREEDY, input="More?", previous_response_id=over_socket.id)
    assert again.previous_response_id == over_socket.id
    assert client.responses.retrieve(over_socket.id).output_text == over_socket.output_text
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)  # kept by its connection only


@pytest.fixture
def socket(v1: str) -> Iterator[ClientConnection]:
    """A raw WebSocket to ``/v1/responses``, for what the SDK would not send."""
    with connect(v1.replace("http://", "ws://") + "/responses") as connection:
        yield connection


def received(connection: ClientConnection) -> dict[str, Any]:
    message = json.loads(connection.recv(timeout=60))
    assert isinstance(message, dict)
    return message


@pytest.mark.parametrize(
    ("message", "param", "words"),
    [
        ("not json", None, "JSON object"),
        ("[1, 2]", None, "JSON object"),
        ('{"model": "smollm2:135m", "input": "x"}', "type", "unknown event type None"),
        ('{"type": "response.cancel"}', "type", "'response.cancel'"),
        ('{"type": "response.create", "input": "x"}', "model", "model"),
        ('{"type": "response.create", "model": "smollm2:135m"}', "input", "input"),
        (
            '{"type": "response.create", "model": "m", "input": "x", "stream_id": 5}',
            "stream_id",
            "",
        ),
        ('{"type": "response.create", "model": "m", "input": "x", "generate": 1}', "generate", ""),
        (
            '{"type": "response.create", "model": "m", "input": "x", "stream_id": "a b"}',
            "stream_id",
            "letters",
        ),
        (json.dumps({"type": "response.create", "stream_id": "s" * 257}), "stream_id", "256"),
        (
            '{"type": "response.create", "model": "m", "input": "x", "background": true}',
            "background",
            "background",
        ),
    ],
)
def test_bad_messages_are_error_events_and_the_connection_stays_open(
    socket: ClientConnection, message: str, param: str | None, words: str
) -> None:
    socket.send(message)
    error = received(socket)
    assert error["type"] == "error" and error["status"] == 400
    assert error["error"]["type"] == "invalid_request_error"
    assert words in error["error"]["message"]
    assert error["error"]["param"] == param
    socket.send(json.dumps({"type": "response.create", **GREEDY, "input": "Hi"}))
    assert received(socket)["type"] == "response.created"


def test_stream_is_implied(socket: ClientConnection) -> None:
    socket.send(json.dumps({"type": "response.create", **GREEDY, "input": "Hi", "stream": False}))
    kinds = []
    while not kinds or kinds[-1] not in FINAL:
        kinds.append(received(socket)["type"])
    assert "response.output_text.delta" in kinds
    assert kinds[-1] in ("response.completed", "response.incomplete")


def test_messages_sent_together_are_answered_in_order(socket: ClientConnection) -> None:
    for n in range(3):
        create = {"type": "response.create", **GREEDY, "input": f"{n}", "metadata": {"n": str(n)}}
        socket.send(json.dumps(create))
    finals = []
    while len(finals) < 3:
        event = received(socket)
        if event["type"] in FINAL:
            finals.append(event)
    assert [final["response"]["metadata"]["n"] for final in finals] == ["0", "1", "2"]


def test_a_plain_get_is_405_in_openais_shape(v1: str) -> None:
    reply = requests.get(v1 + "/responses", timeout=30)
    assert reply.status_code == 405
    assert reply.json()["error"]["type"] == "invalid_request_error"


def test_keys_are_checked_at_the_handshake(keyed_server: PowerServer) -> None:
    base = keyed_server.url + "/v1"
    refused_client = OpenAI(base_url=base, api_key="wrong")
    with pytest.raises(InvalidStatus) as refused, refused_client.responses.connect() as connection:
        connection.response.create(**GREEDY, input="Hi")
    assert refused.value.response.status_code == 401
    with OpenAI(base_url=base, api_key=KEYS[0]).responses.connect() as connection:
        assert answer(connection, input="Hi").output_text


def test_a_message_over_the_body_limit_closes_with_1009(keyed_server: PowerServer) -> None:
    url = keyed_server.url.replace("http://", "ws://") + "/v1/responses"
    headers = {"Authorization": f"Bearer {KEYS[0]}"}
    with connect(url, additional_headers=headers) as connection:
        connection.send(json.dumps({"type": "response.create", **GREEDY, "input": "x" * 5000}))
        with pytest.raises(ConnectionClosed) as closed:
            connection.recv(timeout=60)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_the_body_limit_counts_bytes(keyed_server: PowerServer) -> None:
    """The socket counts a message's characters; the limit is on its UTF-8 bytes, as a
    request body's is."""
    url = keyed_server.url.replace("http://", "ws://") + "/v1/responses"
    headers = {"Authorization": f"Bearer {KEYS[0]}"}
    with connect(url, additional_headers=headers) as connection:
        connection.send(
            json.dumps(
                {"type": "response.create", **GREEDY, "input": "é" * 2100}, ensure_ascii=False
            )
        )
        error = received(connection)
        assert error["type"] == "error" and error["status"] == 413
        assert error["error"]["code"] == "message_too_large"
        connection.send(json.dumps({"type": "response.create", **GREEDY, "input": "Hi"}))
        assert received(connection)["type"] == "response.created"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Sec-WebSocket-Version": "13"}, 400),
        ({"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "c2hvcnQ="}, 400),
        ({"Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, 426),
    ],
)
def test_a_bad_handshake_is_refused_in_openais_shape(
    power_server: PowerServer, v1: str, headers: dict[str, str], status: int
) -> None:
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", **headers}
    reply = requests.get(v1 + "/responses", headers=upgrade, timeout=30)
    assert reply.status_code == status
    assert reply.json()["error"]["type"] == "invalid_request_error"
    if status == 426:
        assert reply.headers["Sec-WebSocket-Version"] == "13"
    assert "Traceback" not in power_server.log()


def test_a_conversation_is_kept_up_to_the_body_limit(keyed_server: PowerServer) -> None:
    """The keyed server takes bodies of 4,000 bytes: a conversation that grows past them
    over the connection is not kept, as no request could have carried it."""
    client = OpenAI(base_url=keyed_server.url + "/v1", api_key=KEYS[0], max_retries=0)
    with client.responses.connect() as connection:
        first = answer(connection, input="apple " * 400, store=False)  # 2,400 bytes
        second = answer(connection, input="pear " * 300, previous_response_id=first.id, store=False)
        assert second.previous_response_id == first.id
        connection.response.create(**GREEDY, input="And?", previous_response_id=second.id)
        [error] = events_until_final(connection)
    assert error.error.code == "previous_response_not_found"


def test_a_client_that_leaves_frees_its_sequence(keyed_server: PowerServer) -> None:
    """The keyed server runs one sequence: a generation abandoned mid-way would hold it for
    thousands of tokens; it is cancelled within moments of the client leaving."""
    url = keyed_server.url.replace("http://", "ws://") + "/v1/responses"
    headers = {"Authorization": f"Bearer {KEYS[0]}"}
    create = {
        "type": "response.create",
        **GREEDY,
        "input": "Write a very long story.",
        "max_output_tokens": 6000,
        "logit_bias": NO_EOS,
    }
    with connect(url, additional_headers=headers) as connection:
        connection.send(json.dumps(create))
        while received(connection)["type"] != "response.output_text.delta":
            pass
        assert keyed_server.active_requests(KEYS[0]) == 1
    deadline = time.monotonic() + 30  # the whole generation would take a minute or more
    while keyed_server.active_requests(KEYS[0]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert keyed_server.active_requests(KEYS[0]) == 0


def test_a_client_that_leaves_while_queued_is_dropped(keyed_server: PowerServer) -> None:
    """Behind a running generation (one sequence), a queued response writes nothing a
    departure could break: the connection is watched instead."""
    url = keyed_server.url.replace("http://", "ws://") + "/v1/responses"
    headers = {"Authorization": f"Bearer {KEYS[0]}"}
    long = {"type": "response.create", **GREEDY, "input": "Tell a story.", "logit_bias": NO_EOS}
    dropped = "left while its request waited in the queue"
    before = keyed_server.log().count(dropped)
    with connect(url, additional_headers=headers) as running:
        running.send(json.dumps({**long, "max_output_tokens": 6000}))
        while received(running)["type"] != "response.output_text.delta":
            pass
        with connect(url, additional_headers=headers) as queued:
            queued.send(json.dumps({"type": "response.create", **GREEDY, "input": "Hi"}))
            assert received(queued)["type"] == "response.created"
        deadline = time.monotonic() + 30
        while keyed_server.log().count(dropped) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert keyed_server.log().count(dropped) == before + 1


def test_a_shutdown_closes_idle_connections_with_going_away(tmp_path: Path) -> None:
    servers = serving_test_model(tmp_path)
    server = next(servers)
    try:
        url = server.url.replace("http://", "ws://") + "/v1/responses"
        with connect(url) as connection:
            connection.send(json.dumps({"type": "response.create", **GREEDY, "input": "Hi"}))
            while received(connection)["type"] not in FINAL:
                pass
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                connection.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert server.process.wait(timeout=30) == 0
        assert "cut short" not in server.log()
    finally:
        servers.close()

"""A client that keeps its connection but reads nothing: a write waits for it at most
``send_timeout`` seconds (2 here), then the connection is closed and the request ends, over
HTTP and over WebSocket alike."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from conftest import PowerServer, serving_test_model

pytestmark = pytest.mark.model

MODEL = "smollm2:135m"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerServer]:
    home: Path = tmp_path_factory.mktemp("stalled-home")
    yield from serving_test_model(home, send_timeout="2")


def silent_client(server: PowerServer) -> socket.socket:
    """A connection with a small receive window, which the test never reads from."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    return sock


def wait_for_log(server: PowerServer, text: str, count: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while server.log().count(text) < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_an_http_answer_nobody_reads_is_given_up(server: PowerServer) -> None:
    stalled = "read nothing for 2 s"
    before = server.log().count(stalled)
    # about 17 MB of JSON: far more than the two sockets' buffers hold
    body = json.dumps({"model": MODEL, "input": ["Hi"] * 1500}).encode()
    with silent_client(server) as sock:
        sock.sendall(
            b"POST /api/embed HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        # without the limit the write waits as long as the connection lasts
        assert wait_for_log(server, stalled, before + 1, 60), server.log()[-2000:]
    assert requests.get(server.url + "/api/version", timeout=30).ok
    assert "Traceback" not in server.log()


def test_a_websocket_nobody_reads_is_given_up(server: PowerServer) -> None:
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import Request, TextMessage

    left = "a WebSocket client left (ClientStalled)"
    before = server.log().count(left)
    schema = {"type": "object", "description": "x" * 4_000_000, "properties": {}}
    create = {
        "type": "response.create",
        "model": MODEL,
        "input": "Hi",
        "max_output_tokens": 4,
        "text": {"format": {"type": "json_schema", "name": "big", "schema": schema}},
    }
    protocol = WSConnection(ConnectionType.CLIENT)
    with silent_client(server) as sock:
        sock.sendall(protocol.send(Request(host="127.0.0.1", target="/v1/responses")))
        protocol.receive_data(sock.recv(4096))  # the handshake's answer, then nothing more
        assert [type(event).__name__ for event in protocol.events()] == ["AcceptConnection"]
        sock.sendall(protocol.send(TextMessage(json.dumps(create))))
        # every event echoes the 4 MB schema: the first ones fill the buffers
        assert wait_for_log(server, left, before + 1, 60), server.log()[-2000:]
        assert server.active_requests() == 0
    assert "Traceback" not in server.log()

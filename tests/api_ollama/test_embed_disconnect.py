"""An embedding request whose client leaves stops: a long list of inputs is embedded a
group at a time, and the connection is looked at between groups (the answer is written
only at the end, so nothing else would notice)."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
import requests

from conftest import PowerServer

pytestmark = pytest.mark.model

MODEL = "smollm2:135m"
#: about 36,000 tokens: half a minute or more of embedding on 2 cores
INPUTS = [f"Note {i}: " + "the river runs past the old mill " * 16 for i in range(300)]


def wait_for_active(server: PowerServer, count: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while server.active_requests() != count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def send(server: PowerServer, path: str, body: dict[str, Any]) -> socket.socket:
    """POST ``body`` on a raw socket, to leave without reading the answer."""
    payload = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=300)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    return sock


@pytest.mark.parametrize(("path", "field"), [("/api/embed", "input"), ("/v1/embeddings", "input")])
def test_an_abandoned_embedding_stops(power_server: PowerServer, path: str, field: str) -> None:
    requests.post(
        power_server.url + "/api/embed", json={"model": MODEL, "input": "warm"}, timeout=60
    )
    sock = send(power_server, path, {"model": MODEL, "input": INPUTS})
    assert wait_for_active(power_server, 1, 60), "the embedding never started"
    sock.close()
    # embedding all of them takes far longer; the work stops at the next group
    assert wait_for_active(power_server, 0, 10), "the abandoned embedding kept running"
    answered = requests.post(
        power_server.url + "/api/embed", json={"model": MODEL, "input": ["still here"]}, timeout=60
    )
    assert answered.status_code == 200 and len(answered.json()["embeddings"]) == 1

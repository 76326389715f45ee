"""A client that hangs up mid-stream cancels its generation."""

from __future__ import annotations

import socket
import struct
import time
from urllib.parse import urlsplit

import requests

from conftest import ENDLESS_RAW_PROMPT, PowerServer, raw_post

MODEL = "smollm2:135m"


def _active_leases(url: str) -> int:
    models = requests.get(url + "/power/loaded", timeout=10).json()["models"]
    return sum(m["active"] for m in models if m["name"] == MODEL)


def _send_endless_generation(url: str, stream: bool) -> socket.socket:
    """POST a generation that only cancelling ends early, on a raw socket."""
    parts = urlsplit(url)
    body = {
        "model": MODEL,
        "prompt": ENDLESS_RAW_PROMPT,
        "raw": True,
        "stream": stream,
        # ~2000 tokens take well over 15 s on any CPU this runs on (~100 tokens/s at best),
        # so the lease can only drop within the waits below if the generation was cancelled
        "options": {"temperature": 0, "num_predict": 2000},
    }
    request = raw_post(parts.netloc, "/api/generate", body)
    assert parts.hostname is not None and parts.port is not None
    sock = socket.create_connection((parts.hostname, parts.port), timeout=120)
    sock.sendall(request)
    return sock


def test_hanging_up_mid_stream_cancels_the_generation(url: str) -> None:
    with _send_endless_generation(url, stream=True) as sock:
        received = b""
        while received.count(b'"done":false') < 3:
            chunk = sock.recv(4096)
            assert chunk, "the server closed the stream early"
            received += chunk
        assert b"200 OK" in received.split(b"\r\n", 1)[0]
        assert _active_leases(url) == 1
    # the socket is closed: the server notices at its next write and cancels

    deadline = time.monotonic() + 15
    while _active_leases(url) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _active_leases(url) == 0

    answer = requests.post(
        url + "/api/generate",
        timeout=120,
        json={
            "model": MODEL,
            "prompt": "Hi",
            "stream": False,
            "options": {"temperature": 0, "num_predict": 4},
        },
    )
    assert answer.status_code == 200 and answer.json()["done"] is True


def test_hanging_up_on_a_non_streamed_request_cancels_it(url: str) -> None:
    with _send_endless_generation(url, stream=False):
        deadline = time.monotonic() + 60
        while _active_leases(url) == 0:
            assert time.monotonic() < deadline, "the generation never started"
            time.sleep(0.05)
    # nothing was written yet; the server notices by looking at the socket

    deadline = time.monotonic() + 10
    while _active_leases(url) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _active_leases(url) == 0


def test_clients_resetting_their_streams_are_no_errors_in_the_log(
    power_server: PowerServer,
) -> None:
    # a client that dies (RST) right after sending is an ordinary end of a stream: the
    # server used to log it as an error, with a traceback
    parts = urlsplit(power_server.url)
    assert parts.hostname is not None and parts.port is not None
    say_hi = {"model": MODEL, "stream": True, "max_tokens": 200, "options": {"num_predict": 200}}
    routes = {
        "/api/chat": {**say_hi, "messages": [{"role": "user", "content": "hi"}]},
        "/api/generate": {**say_hi, "prompt": "hi"},
        "/v1/chat/completions": {**say_hi, "messages": [{"role": "user", "content": "hi"}]},
        "/v1/completions": {**say_hi, "prompt": "hi"},
        "/v1/responses": {**say_hi, "input": "hi"},
    }
    logged_before = power_server.log_path.read_text(errors="replace")
    for path, body in routes.items():
        for _ in range(6):  # the reset can also land before the server reads the request
            sock = socket.create_connection((parts.hostname, parts.port), timeout=120)
            sock.sendall(raw_post(parts.netloc, path, body))
            # once the server works on it (earlier, the reset drops the unread request)
            deadline = time.monotonic() + 30
            while not _active_leases(power_server.url) and time.monotonic() < deadline:
                time.sleep(0.002)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
    deadline = time.monotonic() + 30
    while _active_leases(power_server.url) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the last writes fail after the lease goes
    logged = power_server.log_path.read_text(errors="replace")[len(logged_before) :]
    assert "Traceback" not in logged and "ERROR" not in logged, logged

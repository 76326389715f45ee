"""Streamed tokens written by the engine's thread (power_core.server.direct), over real HTTP.

The server logs, at debug level, how many chunks of a response the engine thread sent and
how many of those a full socket made the server's thread finish; these tests read that log
to know the direct path ran, and check that what the client gets is exactly what the
usual path sends.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from conftest import ENDLESS_RAW_PROMPT, TEST_MODEL_NAME, PowerServer, serving_test_model
from power_core.server.direct import DirectWriter

DIRECT_LOG = re.compile(
    r"POST (\S+): (\d+) chunks sent by the engine thread \((\d+) finished by the server's\)"
)
GREEDY = {"temperature": 0, "repeat_penalty": 1.0}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerServer]:
    home = tmp_path_factory.mktemp("direct-home")
    yield from serving_test_model(home, num_ctx="2048", num_parallel="2", log_level="debug")


def direct_writes(server: PowerServer, path: str) -> list[tuple[int, int]]:
    """(chunks sent by the engine thread, of which finished by the server's) per request."""
    time.sleep(0.2)  # the line is logged once the response is complete
    return [(int(m[2]), int(m[3])) for m in DIRECT_LOG.finditer(server.log()) if m[1] == path]


def ndjson_text(lines: list[dict[str, Any]]) -> str:
    return "".join(line.get("response", "") for line in lines)


@pytest.mark.model
def test_ollama_stream_is_written_by_the_engine_thread(server: PowerServer) -> None:
    body = {"model": TEST_MODEL_NAME, "prompt": "Once upon a time", "raw": True}
    body["options"] = {**GREEDY, "num_predict": 40}
    before = len(direct_writes(server, "/api/generate"))
    with requests.post(server.url + "/api/generate", json=body, stream=True, timeout=60) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    whole = requests.post(
        server.url + "/api/generate", json={**body, "stream": False}, timeout=60
    ).json()
    assert ndjson_text(lines) == whole["response"]
    assert lines[-1]["done"] is True and lines[-1]["eval_count"] == 40
    assert all(line["model"] == TEST_MODEL_NAME and "created_at" in line for line in lines)
    written = direct_writes(server, "/api/generate")[before:]
    # every text line, the first included; the last line (done) is the server thread's
    assert written == [(len(lines) - 1, 0)]


def sse_events(response: requests.Response) -> list[Any]:
    events = []
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("data: ") and line != "data: [DONE]":
            events.append(json.loads(line[6:]))
    return events


@pytest.mark.model
def test_openai_streams_are_written_by_the_engine_thread(server: PowerServer) -> None:
    completion = {"model": TEST_MODEL_NAME, "prompt": "Once upon a time", "max_tokens": 40}
    completion.update(GREEDY)
    with requests.post(
        server.url + "/v1/completions", json={**completion, "stream": True}, timeout=60
    ) as r:
        chunks = sse_events(r)
    whole = requests.post(server.url + "/v1/completions", json=completion, timeout=60).json()
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole["choices"][0]["text"]
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"

    chat = {"model": TEST_MODEL_NAME, "max_tokens": 40, **GREEDY}
    chat["messages"] = [{"role": "user", "content": "Tell me a story about a lighthouse."}]
    with requests.post(
        server.url + "/v1/chat/completions", json={**chat, "stream": True}, timeout=60
    ) as r:
        deltas = [c["choices"][0]["delta"] for c in sse_events(r)]
    whole = requests.post(server.url + "/v1/chat/completions", json=chat, timeout=60).json()
    assert deltas[0] == {"role": "assistant", "content": "", "refusal": None}
    text = "".join(d.get("content") or "" for d in deltas)
    assert text == whole["choices"][0]["message"]["content"]
    for path in ("/v1/completions", "/v1/chat/completions"):
        written = direct_writes(server, path)
        assert written and written[-1][0] >= 35, path


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def dechunk(body: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        out += body[:size]
        assert body[size : size + 2] == b"\r\n"
        body = body[size + 2 :]


@pytest.mark.model
def test_a_client_that_stops_reading_still_gets_every_chunk(server: PowerServer) -> None:
    """Chunks written while the client does not read are all there, whole and in order."""
    tokens = 600
    body = json.dumps(
        {
            "model": TEST_MODEL_NAME,
            "prompt": ENDLESS_RAW_PROMPT,
            "raw": True,
            "options": {**GREEDY, "num_predict": tokens},
        }
    ).encode()
    request = (
        b"POST /api/generate HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    )
    before = len(direct_writes(server, "/api/generate"))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # a small window
    sock.connect(("127.0.0.1", server.port))
    try:
        sock.sendall(request)
        time.sleep(3)  # the server writes on meanwhile
        raw = read_response(sock)
    finally:
        sock.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"chunked" in head.lower()
    lines = [json.loads(line) for line in dechunk(payload).splitlines()]
    assert lines[-1]["done"] is True and lines[-1]["eval_count"] == tokens
    fast = requests.post(
        server.url + "/api/generate", data=body, headers={"Content-Type": "application/json"}
    )
    assert ndjson_text(lines) == ndjson_text([json.loads(x) for x in fast.text.splitlines()])
    written = direct_writes(server, "/api/generate")[before:]
    assert written and written[0][0] >= tokens - 10


class _Handler:
    """What DirectWriter reads of pywsgi's handler: its socket and the response state."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        self.headers_sent = True
        self.response_use_chunked = True


def test_a_full_socket_leaves_the_rest_pending() -> None:
    sender, receiver = socket.socketpair()
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sender.setblocking(False)
    writer = DirectWriter(_Handler(sender))
    framed = b""
    chunk = b'{"response":"token"}\n' * 10
    chunks = 0
    while not writer.pending:  # the receiver never reads: the socket fills up
        assert writer.write_nowait(chunk)
        framed += b"%x\r\n%b\r\n" % (len(chunk), chunk)
        chunks += 1
    assert writer.deferred == 1 and writer.written == chunks
    assert not writer.ready() and not writer.write_nowait(chunk)  # declined: nothing sent
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(read_response(receiver)))
    reader.start()  # the client reads again
    sender.setblocking(True)
    sender.sendall(writer.take_pending())  # what the server's thread does at its next write
    sender.close()
    reader.join(30)
    receiver.close()
    assert received == [framed]


def test_a_gone_client_breaks_the_writer() -> None:
    sender, receiver = socket.socketpair()
    receiver.close()
    writer = DirectWriter(_Handler(sender))
    assert writer.write_nowait(b"x")  # taken, and lost with the client
    assert writer.broken and not writer.ready() and not writer.write_nowait(b"y")
    sender.close()

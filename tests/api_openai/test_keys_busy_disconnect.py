"""Against a server with bearer keys, one sequence and a one-job queue: 401s, 413, busy
503s with ``Retry-After``, and a client that disconnects mid-stream freeing its sequence."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from typing import Any

import ollama
import openai
import pytest
import requests
from openai import OpenAI

from api_openai.wire_reading import KEYS, MODEL, NO_EOS, assert_error_shape
from conftest import PowerServer, power_cli

pytestmark = pytest.mark.model

AUTH = {"Authorization": f"Bearer {KEYS[1]}"}
#: a stream that would run until its 8192-token context is full
ENDLESS = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Tell a story."}],
    "stream": True,
    "logit_bias": NO_EOS,
}


def test_missing_or_wrong_key_is_401(keyed_server: PowerServer) -> None:
    v1 = keyed_server.url + "/v1"
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {KEYS[0]}"}):
        response = requests.get(v1 + "/models", headers=headers, timeout=60)
        assert_error_shape(response, 401, code="invalid_api_key")
    response = requests.post(v1 + "/chat/completions", json={}, timeout=60)
    assert_error_shape(response, 401)
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=v1, api_key="sk-wrong", max_retries=0).models.list()


def test_a_configured_key_is_accepted(keyed_server: PowerServer) -> None:
    for key in KEYS:
        client = OpenAI(base_url=keyed_server.url + "/v1", api_key=key, max_retries=0)
        assert [m.id for m in client.models.list()] == [MODEL]
    # the scheme is case-insensitive, as in HTTP
    response = requests.get(
        keyed_server.url + "/v1/models", headers={"Authorization": f"bearer {KEYS[0]}"}, timeout=60
    )
    assert response.status_code == 200


def test_keys_guard_every_api_and_the_cli_sends_one(keyed_server: PowerServer) -> None:
    url = keyed_server.url
    guarded = [
        ("GET", "/api/tags"),
        ("GET", "/api/version"),
        ("POST", "/api/show"),
        ("POST", "/api/generate"),
        ("POST", "/api/copy"),
        ("DELETE", "/api/delete"),
        ("GET", "/power/loaded"),
        ("POST", "/power/unload"),
        ("GET", "/no/such/route"),
    ]
    copy = {"source": MODEL, "destination": "stolen:1"}
    for method, path in guarded:
        body = copy if path == "/api/copy" else {"model": MODEL}
        response = requests.request(method, url + path, json=body, timeout=60)
        assert response.status_code == 401, (path, response.text)
        assert "API key" in response.json()["error"], path  # the Ollama and core shape
    # nothing was deleted or copied, and liveness answers without a key
    listed = requests.get(url + "/api/tags", headers=AUTH, timeout=60).json()["models"]
    assert [m["name"] for m in listed] == [MODEL]
    for path in ("/", "/health"):
        assert requests.get(url + path, timeout=60).status_code == 200
    assert "loaded_models" not in requests.get(url + "/health", timeout=60).json()
    # Ollama's client passes headers through; the CLI sends the first configured key
    assert [m.model for m in ollama.Client(host=url, headers=AUTH).list().models] == [MODEL]
    with pytest.raises(ollama.ResponseError) as refused:
        ollama.Client(host=url).list()
    assert refused.value.status_code == 401
    assert power_cli(keyed_server.env, "ps").returncode == 0


def test_oversized_body_is_413_in_openai_shape(keyed_server: PowerServer) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 5000}]}
    response = requests.post(
        keyed_server.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=60
    )
    assert_error_shape(response, 413)


def _send(server: PowerServer, path: str, body: dict[str, Any]) -> socket.socket:
    """POST ``body`` to ``path`` on a raw socket (to leave without reading the answer)."""
    payload = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=300)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\n".encode()
        + f"Authorization: {AUTH['Authorization']}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    return sock


def _open_stream(server: PowerServer, body: dict[str, Any]) -> socket.socket:
    """Start a streamed request on a raw socket and read until its first content chunk."""
    sock = _send(server, "/v1/chat/completions", body)
    received = b""
    while b'"content":"' not in received.replace(b'"content":""', b""):
        data = sock.recv(65536)
        assert data, f"stream ended early: {received!r}"
        received += data
    assert received.startswith(b"HTTP/1.1 200"), received
    return sock


def _reset(sock: socket.socket) -> None:
    """Close abruptly (RST), as a client that dies does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _active_leases(server: PowerServer) -> int:
    loaded = requests.get(server.url + "/power/loaded", headers=AUTH, timeout=60)
    models = loaded.json()["models"]
    return sum(m["active"] for m in models)


def _wait_for_leases(server: PowerServer, count: int) -> None:
    deadline = time.monotonic() + 120
    while _active_leases(server) != count:
        assert time.monotonic() < deadline, f"never reached {count} active requests"
        time.sleep(0.05)


def test_busy_server_answers_503_and_a_disconnect_frees_the_sequence(
    keyed_server: PowerServer,
) -> None:
    # A would run until its 8192-token context is full: only cancelling it can free the
    # one sequence for B in time
    first = _open_stream(keyed_server, ENDLESS)
    queued: dict[str, Any] = {}

    def wait_in_queue() -> None:
        # greedy: sampled, the answer could end within 2 tokens and count fewer
        response = requests.post(
            keyed_server.url + "/v1/chat/completions",
            headers=AUTH,
            timeout=60,
            json={
                "model": MODEL,
                "messages": [{"role": "user", "content": "Hi"}],
                "temperature": 0,
                "max_tokens": 2,
            },
        )
        queued["status"] = response.status_code
        queued["body"] = response.json()

    waiter = threading.Thread(target=wait_in_queue)
    waiter.start()
    try:
        _wait_for_leases(keyed_server, 2)  # A runs, B waits in the engine's queue
        busy = requests.post(
            keyed_server.url + "/v1/chat/completions",
            headers=AUTH,
            timeout=60,
            json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
        )
        assert_error_shape(busy, 503, code="server_busy")
        assert int(busy.headers["Retry-After"]) >= 1
    finally:
        _reset(first)
    # uncancelled, A would hold the sequence for ~8000 tokens: far longer than this
    waiter.join(timeout=60)
    assert not waiter.is_alive(), "the queued request never ran: the disconnect freed nothing"
    assert queued["status"] == 200, queued
    assert queued["body"]["usage"]["completion_tokens"] == 2
    _wait_for_leases(keyed_server, 0)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_a_client_leaving_a_non_streamed_request_frees_the_sequence(
    keyed_server: PowerServer, path: str
) -> None:
    # nothing is written before the end, so only a look at the socket can notice
    body: dict[str, Any] = {"model": MODEL, "logit_bias": NO_EOS, "max_tokens": 4000}
    if path == "/v1/chat/completions":
        body["messages"] = [{"role": "user", "content": "Tell a story."}]
    else:
        body["prompt"] = "Once upon a time"
    sock = _send(keyed_server, path, body)
    _wait_for_leases(keyed_server, 1)
    sock.close()
    # 4000 tokens take well over 30 s here; the lease must go within a few checks
    deadline = time.monotonic() + 10
    while _active_leases(keyed_server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _active_leases(keyed_server) == 0, "the abandoned generation kept running"


@pytest.mark.parametrize("streamed", [False, True])
def test_a_client_leaving_while_its_request_is_queued_frees_its_place(
    keyed_server: PowerServer, streamed: bool
) -> None:
    # A holds the one sequence; B waits in the queue, which no event comes to, and leaves
    first = _open_stream(keyed_server, ENDLESS)
    try:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": streamed}
        queued = _send(keyed_server, "/v1/chat/completions", body)
        _wait_for_leases(keyed_server, 2)
        queued.close()
        # kept, B would run after A (thousands of tokens from now) and fill the queue
        deadline = time.monotonic() + 10
        while _active_leases(keyed_server) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _active_leases(keyed_server) == 1, "the abandoned request is still queued"
    finally:
        _reset(first)
    _wait_for_leases(keyed_server, 0)


def test_more_prompts_than_the_model_ever_takes_is_a_400_not_a_busy_503(
    keyed_server: PowerServer,
) -> None:
    # one sequence and a one-job queue: two prompts fit, three never can
    def complete(prompts: list[str]) -> requests.Response:
        return requests.post(
            keyed_server.url + "/v1/completions",
            headers=AUTH,
            timeout=60,
            json={"model": MODEL, "prompt": prompts, "max_tokens": 2, "temperature": 0},
        )

    refused = complete(["One", "Two", "Three"])
    assert_error_shape(refused, 400, param="prompt")
    assert "at most 2" in refused.json()["error"]["message"]
    _wait_for_leases(keyed_server, 0)  # the prompt already started is let go
    served = complete(["One", "Two"])
    assert served.status_code == 200, served.text
    assert [choice["index"] for choice in served.json()["choices"]] == [0, 1]

"""Requests that arrive together start together: the count of requests on their way, and
a real server that reads a burst before its idle engine starts (:mod:`power_core.arrivals`).

The engine logs, at debug level, how many jobs each step admitted; the server test reads
that log from the server's output.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from conftest import TEST_MODEL_NAME, PowerServer, raw_post, serving_test_model
from power_core.arrivals import ArrivingRequests

ADMITTED = re.compile(r"power_backend_llamacpp\.batching: (\d+) job\(s\) admitted")
PROMPTS = ["The capital of France is", "Water boils at", "Cats like to", "The ocean is"]


def test_a_request_counts_while_on_its_way_even_when_it_fails() -> None:
    arriving = ArrivingRequests()
    with arriving.on_the_way():
        with arriving.on_the_way():
            assert arriving.count() == 2
        assert arriving.count() == 1
    with pytest.raises(RuntimeError), arriving.on_the_way():
        raise RuntimeError("the engine refused the job")
    assert arriving.count() == 0


def test_waiting_ends_when_the_last_request_arrives() -> None:
    arriving = ArrivingRequests()
    entered = threading.Event()
    leave = threading.Event()

    def request() -> None:
        with arriving.on_the_way():
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=request)
    thread.start()
    entered.wait(10)
    threading.Timer(0.05, leave.set).start()
    waited = arriving.wait_until_none_on_the_way(time.sleep, limit=30.0)
    thread.join(10)
    assert arriving.count() == 0
    assert 0.0 < waited < 30.0


def test_waiting_gives_up_at_the_limit() -> None:
    arriving = ArrivingRequests()
    with arriving.on_the_way():
        assert arriving.wait_until_none_on_the_way(time.sleep, limit=0.05) >= 0.05
    assert arriving.wait_until_none_on_the_way(time.sleep, limit=30.0) < 30.0  # none: at once


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerServer]:
    home = tmp_path_factory.mktemp("arrivals-home")
    yield from serving_test_model(home, num_ctx="1024", num_parallel="4", log_level="debug")


def admitted(server: PowerServer) -> list[int]:
    return [int(m[1]) for m in ADMITTED.finditer(server.log())]


def server_pid(server: PowerServer) -> int:
    assert server.process is not None
    return server.process.pid


def generate_request(prompt: str) -> bytes:
    options = {"temperature": 0, "num_predict": 4}
    body = {"model": TEST_MODEL_NAME, "prompt": prompt, "raw": True, "stream": False}
    return raw_post("localhost", "/api/generate", {**body, "options": options}, close=True)


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.mark.model
def test_requests_sent_together_start_in_one_step(server: PowerServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:  # loads the model
        sock.sendall(generate_request("Hello"))
        assert read_all(sock).startswith(b"HTTP/1.1 200")
    socks = [socket.create_connection((host, int(port)), timeout=60) for _ in PROMPTS]
    requests = [generate_request(prompt) for prompt in PROMPTS]
    try:
        before = len(admitted(server))
        # all but the last byte: the server reads each request up to its body's end...
        for sock, request in zip(socks, requests, strict=True):
            sock.sendall(request[:-1])
        time.sleep(0.3)
        # ...and finds the last bytes all there when it next runs (this process may lose
        # its core between two sends on a busy machine; the server then runs in between)
        os.kill(server_pid(server), signal.SIGSTOP)
        try:
            for sock, request in zip(socks, requests, strict=True):
                sock.send(request[-1:])
        finally:
            os.kill(server_pid(server), signal.SIGCONT)
        replies = [read_all(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    for reply in replies:
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        answer = json.loads(body)
        assert answer["done"] is True and answer["eval_count"] == 4
    assert admitted(server)[before:] == [len(PROMPTS)]


BUSY_HUB = r"""
import gevent.monkey
gevent.monkey.patch_all()

import gevent

from power_core.arrivals import let_arrived_requests_in

busy = True

def yield_forever():
    # a greenlet that yields in a loop: gevent's idle watchers never get to run
    while busy:
        gevent.sleep(0)

gevent.spawn(yield_forever)
gevent.sleep(0.01)
with gevent.Timeout(10):  # raises, failing the script, if the wait had no limit
    let_arrived_requests_in()
busy = False
print("caught up")
"""


def test_a_hub_that_is_never_idle_delays_a_request_only_so_long() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BUSY_HUB], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "caught up"

"""The reason a failed pull or push gives: the cause at the end of requests' chain, short."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import requests

from conftest import free_port
from power_core.pull.network_failures import failure_reason


def reason_for(url: str, timeout: float = 5) -> str:
    with pytest.raises(requests.RequestException) as caught:
        requests.get(url, timeout=timeout)
    return failure_reason(caught.value)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port whose first connection is never answered, and later ones not in TLS."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(connection)
            if len(accepted) > 1:  # the TLS attempt: answered with bytes that are not TLS
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()
    for connection in accepted:
        connection.close()


def test_a_refused_connection() -> None:
    port = free_port()  # nothing listens there
    assert reason_for(f"http://127.0.0.1:{port}/x") == "cannot reach 127.0.0.1: connection refused"


def test_a_name_that_does_not_resolve() -> None:
    # .invalid never resolves (RFC 6761)
    assert reason_for("https://registry.invalid/v2/") == (
        "cannot reach registry.invalid: the host name could not be resolved"
    )


def test_a_server_that_never_answers_then_one_that_does_not_speak_tls(silent_server: int) -> None:
    assert reason_for(f"http://127.0.0.1:{silent_server}/", timeout=0.3) == (
        "cannot reach 127.0.0.1: timed out waiting for an answer"
    )
    reason = reason_for(f"https://127.0.0.1:{silent_server}/")
    assert reason.startswith("cannot reach 127.0.0.1: TLS failed: "), reason
    assert len(reason) < 120


def test_a_failure_without_a_known_cause_is_cut_at_a_word() -> None:
    reason = failure_reason(ValueError("word " * 100))
    assert reason.endswith("word …") and len(reason) < 210

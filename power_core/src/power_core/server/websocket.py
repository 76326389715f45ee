"""Helpers for WebSocket routes of API plugins (``context.sock.route``), which get a
``simple_websocket`` server socket under the server's gevent."""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping
from typing import Any

from power_core.server.sending import send_all


class WholeWrites:
    """A socket whose ``send`` writes all it is given, one writer at a time, and gives up
    on a client that reads nothing for ``stall_seconds`` (as every HTTP write does:
    :mod:`power_core.server.sending`).

    ``simple_websocket`` writes each frame with one ``socket.send``, which under gevent may
    take only part of it when the client's window is full: the rest was lost, and the next
    frame's header landed inside this one's payload. Its reader writes pongs and closes on
    the same socket, hence the lock.
    """

    def __init__(self, sock: Any, stall_seconds: float) -> None:
        self._sock = sock
        self._stall_seconds = stall_seconds
        self._lock = threading.Lock()

    def send(self, data: bytes) -> int:
        with self._lock:
            send_all(self._sock, data, self._stall_seconds)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def handshake_refusal(headers: Mapping[str, str]) -> tuple[int, str] | None:
    """Why a WebSocket handshake cannot be answered (a status and a message), checked
    before ``simple_websocket`` takes the connection: it answered a missing key with a 500
    and held the connection open. ``headers`` are named in lower case."""
    if headers.get("sec-websocket-version", "").strip() != "13":
        return 426, "this server speaks WebSocket version 13 (Sec-WebSocket-Version: 13)"
    try:
        key = base64.b64decode(headers.get("sec-websocket-key", "").strip(), validate=True)
    except ValueError:
        key = b""
    if len(key) != 16:
        return 400, "a WebSocket handshake needs a Sec-WebSocket-Key: 16 bytes in base64"
    return None

"""The look at a request's socket that lets a non-streamed generation stop when its
client has gone: open, open with a pipelined request waiting, closed, reset."""

from __future__ import annotations

import os
import socket
import struct

from power_core.server.disconnect import CLIENT_SOCKET, client_gone_check


def test_without_the_socket_there_is_nothing_to_check() -> None:
    assert client_gone_check({}) is None


def test_open_pipelined_closed_and_reset_connections() -> None:
    server_side, client_side = socket.socketpair()
    try:
        gone = client_gone_check({CLIENT_SOCKET: server_side})
        assert gone is not None
        assert gone() is False  # connected, quiet
        client_side.sendall(b"GET /api/tags HTTP/1.1\r\n")  # the client's next request
        assert gone() is False
        assert server_side.recv(4096)  # peeking left it for the server to read
        client_side.close()
        assert gone() is True
    finally:
        server_side.close()


def test_a_reset_tcp_connection_is_gone() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname()[:2])
        accepted, _ = listener.accept()
        try:
            gone = client_gone_check({CLIENT_SOCKET: accepted})
            assert gone is not None and gone() is False
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()  # RST
            assert gone() is True
        finally:
            accepted.close()


def test_descriptors_above_select_s_limit_are_checked_too() -> None:
    # a busy server has connections numbered past 1023, which select() cannot watch
    server_side, client_side = socket.socketpair()
    high = os.dup2(server_side.fileno(), 1500)
    busy = socket.socket(fileno=high)
    try:
        gone = client_gone_check({CLIENT_SOCKET: busy})
        assert gone is not None
        assert gone() is False
        client_side.close()
        assert gone() is True
    finally:
        busy.close()
        server_side.close()

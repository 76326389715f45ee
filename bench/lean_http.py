"""A minimal HTTP/1.1 client for streamed responses, so the harness takes little CPU.

On 2 cores every microsecond the client spends reading a token is taken from llama.cpp's
threads (and the in-process baseline has no client at all). ``httpx`` used 200-235 us of
CPU per streamed token here; this reader, a ``recv`` and a few slices per token, under
100 us. It speaks just what the benchmarks need: ``POST`` with a JSON body on a keep-alive
connection, and a response framed by ``Content-Length``, chunked encoding, or the close of
the connection, read line by line (NDJSON and server-sent events are line-based).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

_RECV = 65536


class LeanHTTPError(Exception):
    """The connection failed or the response was not HTTP/1.1 as expected."""


class LeanClient:
    """One keep-alive connection per origin, reused across requests (like ``httpx.Client``)."""

    def __init__(self) -> None:
        self._sockets: dict[tuple[str, int], socket.socket] = {}

    def __enter__(self) -> LeanClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()

    def _connection(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = self._sockets.get((host, port))
        if sock is None:
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets[(host, port)] = sock
        sock.settimeout(timeout)
        return sock

    def _drop(self, host: str, port: int) -> None:
        sock = self._sockets.pop((host, port), None)
        if sock is not None:
            sock.close()

    def post_lines(self, url: str, body: dict[str, Any], timeout: float) -> LeanResponse:
        """Send ``body`` as JSON; the response's status and a reader of its body lines."""
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        data = json.dumps(body).encode()
        head = (
            f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nAccept: */*\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        ).encode()
        for attempt in (0, 1):
            sock = self._connection(host, port, timeout)
            try:
                sock.sendall(head + data)
                return LeanResponse(sock, lambda: self._drop(host, port))
            except (OSError, LeanHTTPError):
                # a kept-alive connection the server closed meanwhile: one fresh try
                self._drop(host, port)
                if attempt:
                    raise
        raise AssertionError("unreachable")


class LeanResponse:
    """Status, headers and body lines of one response on a kept-alive socket."""

    def __init__(self, sock: socket.socket, drop: Any) -> None:
        self._sock = sock
        self._drop = drop
        self._buffer = bytearray()
        head = self._read_head()
        status_line, _, header_text = head.partition(b"\r\n")
        fields = status_line.split(b" ", 2)
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/1."):
            drop()
            raise LeanHTTPError(f"not an HTTP/1.x response: {status_line[:80]!r}")
        self.status = int(fields[1])
        self.headers: dict[str, str] = {}
        for line in header_text.split(b"\r\n"):
            name, _, value = line.partition(b":")
            self.headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        self._keep = self.headers.get("connection", "").lower() != "close"

    def _recv(self) -> bytes:
        chunk = self._sock.recv(_RECV)
        if not chunk:
            raise LeanHTTPError("the server closed the connection mid-response")
        return chunk

    def _read_head(self) -> bytes:
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self._buffer[:end])
                del self._buffer[: end + 4]
                return head
            try:
                self._buffer += self._recv()
            except LeanHTTPError:
                self._drop()
                raise

    def _body(self) -> Iterator[bytes]:
        """The body's bytes as they arrive, unframed."""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            yield from self._chunked()
        elif "content-length" in self.headers:
            left = int(self.headers["content-length"])
            while left > 0:
                if not self._buffer:
                    self._buffer += self._recv()
                piece = bytes(self._buffer[:left])
                del self._buffer[: len(piece)]
                left -= len(piece)
                yield piece
        else:
            self._keep = False
            if self._buffer:
                yield bytes(self._buffer)
                self._buffer.clear()
            while chunk := self._sock.recv(_RECV):
                yield chunk

    def _chunked(self) -> Iterator[bytes]:
        buffer = self._buffer
        while True:
            while (end := buffer.find(b"\r\n")) < 0:
                buffer += self._recv()
            size = int(bytes(buffer[:end]).split(b";", 1)[0], 16)
            del buffer[: end + 2]
            if size == 0:
                while buffer.find(b"\r\n") != 0:  # trailers, then the empty line
                    while (end := buffer.find(b"\r\n")) < 0:
                        buffer += self._recv()
                    if end == 0:
                        break
                    del buffer[: end + 2]
                del buffer[:2]
                return
            while len(buffer) < size + 2:
                buffer += self._recv()
            yield bytes(buffer[:size])
            del buffer[: size + 2]

    def lines(self) -> Iterator[str]:
        """The body's lines (without their line breaks), as they arrive."""
        pending = b""
        try:
            for piece in self._body():
                pending += piece
                while (end := pending.find(b"\n")) >= 0:
                    yield pending[:end].rstrip(b"\r").decode()
                    pending = pending[end + 1 :]
            if pending:
                yield pending.decode()
        except BaseException:
            self._drop()  # unread rest: the connection cannot be reused
            raise
        if not self._keep:
            self._drop()

    def text(self) -> str:
        """The whole body as text."""
        return "\n".join(self.lines())

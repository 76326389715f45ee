"""Streamed tokens written to the client by the engine's thread.

A token that goes the usual way wakes the server's thread: the gevent hub, a greenlet, the
generators that render it, werkzeug and pywsgi, one ``send``. On a busy 2-core machine that
cost the server's thread 350-500 us of CPU per token, taken from llama.cpp's threads,
because every wake-up runs with cold caches between two decodes; with the engine thread
writing the chunk, 50-110 us, and one stream decoded at 1.00 of in-process instead of
0.95 (bench/README.md).

So a streamed response holds its headers (and any opening chunk) for the first token,
and the API asks its :class:`~power_core.generation.GenerationStream` to hand plain text
straight to a :class:`DirectWriter`: the engine thread renders the chunk, frames it as
pywsgi would, and sends it, the held bytes first, in one write that never blocks. Until the
first token neither the server's thread nor the client wakes: on 2 cores either would take
a core from the prompt's decode. Everything else (thinking, tool calls,
log-probabilities, the final chunk, any error) still goes through the server's thread,
which takes over for good the first time the direct path declines an event. A client too
slow to take a chunk at once leaves the rest in :attr:`DirectWriter.pending`; the server's
thread sends it, before anything else, at its next write.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from flask import request

from power_core.generation import GenerationStream

#: the WSGI environment key under which the server handler leaves the request's writer
DIRECT_WRITER = "a3s_power.direct_writer"


class DirectWriter:
    """Writes whole body chunks of one response from any thread, never blocking.

    ``handler`` is the server's pywsgi handler of the request: its socket, whether the
    headers are out, and whether the body is chunked.
    """

    def __init__(self, handler: Any) -> None:
        self._handler = handler
        #: bytes a full socket did not take; the server's thread sends them first
        self.pending = b""
        #: the status line, headers and opening chunk, held for the first direct write (or
        #: the server's thread's next write, whichever comes first)
        self.head = b""
        self._holding = False
        #: the client went away during a direct write
        self.broken = False
        #: chunks written from another thread, and how many of them only in part (for the
        #: debug log)
        self.written = 0
        self.deferred = 0

    def hold_headers(self, opening: bytes = b"") -> None:
        """Take the status line and headers, and ``opening`` (a first body chunk), without
        sending them (on the server's thread): the first token carries them, so it can go
        the direct way too, instead of waiting for the server's thread to wake on a machine
        whose cores llama.cpp keeps busy (0.5-9 ms measured)."""
        if not self._handler.headers_sent:
            self._holding = True
            try:
                self._handler.write(b"")  # pywsgi renders the headers into capture()
            finally:
                self._holding = False
        if opening:
            self.head += self._framed(opening)

    def capture(self, data: bytes) -> bool:
        """Keep ``data`` instead of sending it, while :meth:`hold_headers` runs."""
        if self._holding:
            self.head += bytes(data)
        return self._holding

    def ready(self) -> bool:
        """Whether a direct write may happen now: headers out, nothing pending, socket fine."""
        handler = self._handler
        return bool(handler.headers_sent) and not self.pending and not self.broken

    def write_nowait(self, body: bytes) -> bool:
        """Send one body chunk without blocking; False (nothing sent) when not :meth:`ready`.

        True means the chunk is taken: sent, or partly sent with the rest in
        :attr:`pending`, or lost to a client that went away (:attr:`broken`).
        """
        if not self.ready() or not body:
            return False
        body = self._framed(body)
        if self.head:
            body, self.head = self.head + body, b""
        try:
            sent = os.write(self._handler.socket.fileno(), body)
        except BlockingIOError:
            sent = 0
        except OSError:  # gone (reset, closed): the server's thread finds out at its write
            self.broken = True
            return True
        if sent < len(body):
            self.pending = body[sent:]
            self.deferred += 1
        self.written += 1
        return True

    def take_pending(self) -> bytes:
        """The held head and the unsent rest, now the caller's to send (on the server's
        thread)."""
        pending, self.head, self.pending = self.head + self.pending, b"", b""
        return pending

    def _framed(self, body: bytes) -> bytes:
        if self._handler.response_use_chunked:
            return b"%x\r\n%b\r\n" % (len(body), body)
        return body


def direct_writer() -> DirectWriter | None:
    """The current request's writer, when the server offers one (plain TCP under
    :mod:`power_core.server.run`; not under a test client or another WSGI server)."""
    writer = request.environ.get(DIRECT_WRITER)
    return writer if isinstance(writer, DirectWriter) else None


def write_text_directly(
    stream: GenerationStream,
    writer: DirectWriter,
    chunk_of: Callable[[str], bytes],
    opening: bytes = b"",
) -> None:
    """Hold the headers if they are not out yet, and ``opening`` (a body chunk that must come
    first), then let ``stream``'s plain text reach the client as ``chunk_of(text)`` from the
    engine's thread. Call it from the response's body generator, between two of its chunks
    (instead of yielding ``opening``)."""
    writer.hold_headers(opening)
    stream.deliver_text_directly(lambda text: writer.write_nowait(chunk_of(text)))

"""Streamed tokens written to the client by the engine's thread.

A token that goes the usual way wakes the server's thread: the gevent hub, a greenlet, the
generators that render it, werkzeug and pywsgi, one ``send``. On a busy 2-core machine that
cost the server's thread 350-500 us of CPU per token, taken from llama.cpp's threads,
because every wake-up runs with cold caches between two decodes; with the engine thread
writing the chunk, 50-110 us, and one stream decoded at 1.00 of in-process instead of
0.95 (bench/README.md).

So a streamed response sends its headers at once, and the API asks its
:class:`~power_core.generation.GenerationStream` to hand plain text straight to a
:class:`DirectWriter`: the engine thread renders the chunk, frames it as pywsgi would, and
sends it without blocking. Everything else (thinking, tool calls,
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
        #: the client went away during a direct write
        self.broken = False
        #: chunks written from another thread, and how many of them only in part (for the
        #: debug log)
        self.written = 0
        self.deferred = 0

    def send_headers(self) -> None:
        """Send the status line and headers now, before any body (on the server's thread):
        the first token can then go the direct way too, instead of waiting for the server's
        thread to wake on a machine whose cores llama.cpp keeps busy (0.5-9 ms measured)."""
        if not self._handler.headers_sent:
            self._handler.write(b"")  # pywsgi sends the headers and skips the empty body

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
        if self._handler.response_use_chunked:
            body = b"%x\r\n%b\r\n" % (len(body), body)
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
        """The unsent rest, now the caller's to send (on the server's thread)."""
        pending, self.pending = self.pending, b""
        return pending


def direct_writer() -> DirectWriter | None:
    """The current request's writer, when the server offers one (plain TCP under
    :mod:`power_core.server.run`; not under a test client or another WSGI server)."""
    writer = request.environ.get(DIRECT_WRITER)
    return writer if isinstance(writer, DirectWriter) else None


def write_text_directly(
    stream: GenerationStream, writer: DirectWriter, chunk_of: Callable[[str], bytes]
) -> None:
    """Send the headers if they are not out yet, then let ``stream``'s plain text reach the
    client as ``chunk_of(text)`` from the engine's thread. Call it from the response's
    body generator, between two of its chunks."""
    writer.send_headers()
    stream.deliver_text_directly(lambda text: writer.write_nowait(chunk_of(text)))

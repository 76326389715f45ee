"""Noticing that the client of a generation went away.

A streamed response finds out at its next write, which fails. A non-streamed one writes
nothing until the end, so without a look at the socket an abandoned request would keep its
sequence busy for the whole generation. The server's handler puts the connection in the
WSGI environment; :func:`cancel_when_client_leaves` has the stream look at it now and then.

Neither way sees a request that waits in the engine's queue behind a full engine: it has
no event to write or to look at the socket on. Abandoned there, it would still be admitted
later and read its whole prompt, while live clients wait behind it and it fills the queue
(``max_queue``) for nothing. :func:`cancel_if_client_leaves_while_queued` watches the
socket from a greenlet until the first event comes.
"""

from __future__ import annotations

import errno
import logging
import select
import socket
from collections.abc import Callable
from typing import Any

from flask import request

from power_core.concurrency import unpatched
from power_core.generation import CLIENT_CHECK_INTERVAL, GenerationStream

log = logging.getLogger(__name__)

#: the WSGI environment key under which the server handler leaves the client's socket
CLIENT_SOCKET = "a3s_power.client_socket"
_GONE_ERRNOS = {errno.ECONNRESET, errno.ENOTCONN, errno.EPIPE, errno.EBADF, errno.ETIMEDOUT}


def is_client_gone_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the socket saying the client went away (a reset, a broken pipe):
    an ordinary end of a stream, not a failure worth a traceback."""
    if isinstance(exc, ConnectionError):
        return True
    return isinstance(exc, OSError) and exc.errno in _GONE_ERRNOS


def client_gone_check(environ: dict[str, Any]) -> Callable[[], bool] | None:
    """A cheap test of whether the request's client closed its connection; ``None`` when
    the server did not say which socket the request came on."""
    client = environ.get(CLIENT_SOCKET)
    if client is None:
        return None

    def gone() -> bool:
        fd = client.fileno()
        if fd < 0:  # closed on our side
            return True
        # poll, not select: select cannot watch descriptors above 1023 (a busy server)
        poller = unpatched("select", "poll")()
        poller.register(fd, select.POLLIN)
        if not poller.poll(0):
            return False
        try:
            # readable with nothing to read is the end of the stream; a pipelined next
            # request would be data, and means the client is still there
            return bool(client.recv(1, socket.MSG_PEEK) == b"")
        except OSError as exc:
            return exc.errno in _GONE_ERRNOS
        except ValueError:  # a socket type that cannot peek (TLS): assume still there
            return False

    return gone


def current_client_gone() -> Callable[[], bool] | None:
    """:func:`client_gone_check` of the request being answered (for work that writes
    nothing until it ends, such as embeddings)."""
    return client_gone_check(request.environ)


def cancel_when_client_leaves(*streams: GenerationStream) -> None:
    """Cancel ``streams`` (with :class:`~power_core.errors.Cancelled`) if the current
    request's client disconnects while they run. For responses written only at the end."""
    gone = client_gone_check(request.environ)
    if gone is not None:
        cancel_streams_when(gone, *streams)


def cancel_streams_when(gone: Callable[[], bool], *streams: GenerationStream) -> None:
    """Cancel ``streams`` once ``gone()`` says their client left, whether they wait in the
    queue or run (a WebSocket's handler, which writes nothing while the queue holds it)."""
    for stream in streams:
        stream.cancel_when(gone)
        _watch_while_queued(stream, gone)


def cancel_if_client_leaves_while_queued(*streams: GenerationStream) -> None:
    """Cancel ``streams`` if the current request's client disconnects before their first
    event (queued behind a full engine); for streamed responses, whose writes notice the
    rest."""
    gone = client_gone_check(request.environ)
    if gone is not None:
        for stream in streams:
            _watch_while_queued(stream, gone)


def _watch_while_queued(stream: GenerationStream, gone: Callable[[], bool]) -> None:
    import gevent

    def watch() -> None:
        while True:
            gevent.sleep(CLIENT_CHECK_INTERVAL)
            if stream.output_started or stream.over:
                return
            if gone():
                log.info("a client left while its request waited in the queue: dropped")
                stream.cancel()
                return

    gevent.spawn(watch)

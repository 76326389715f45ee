"""Noticing that the client of a non-streamed generation went away.

A streamed response finds out at its next write, which fails. A non-streamed one writes
nothing until the end, so without a look at the socket an abandoned request would keep its
sequence busy for the whole generation. The server's handler puts the connection in the
WSGI environment; :func:`cancel_when_client_leaves` has the stream look at it now and then.
"""

from __future__ import annotations

import errno
import select
import socket
from collections.abc import Callable
from typing import Any

from flask import request

from power_core.concurrency import unpatched
from power_core.generation import GenerationStream

#: the WSGI environment key under which the server handler leaves the client's socket
CLIENT_SOCKET = "a3s_power.client_socket"
_GONE_ERRNOS = {errno.ECONNRESET, errno.ENOTCONN, errno.EPIPE, errno.EBADF, errno.ETIMEDOUT}


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


def cancel_when_client_leaves(*streams: GenerationStream) -> None:
    """Cancel ``streams`` (with :class:`~power_core.errors.Cancelled`) if the current
    request's client disconnects while they run. For responses written only at the end."""
    gone = client_gone_check(request.environ)
    if gone is not None:
        for stream in streams:
            stream.cancel_when(gone)

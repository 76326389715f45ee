"""Writing to a client that may have stopped reading.

A client that keeps its connection open but reads nothing (a paused terminal, a hung
program) would hold a write, and with it the request's lease on its model, for as long as
the connection lasts. :func:`send_all` gives up once the socket has taken nothing for
``stall_seconds``: the request ends as if the client had left. Only writes wait this way;
an idle keep-alive connection or WebSocket waiting to read is not touched.
"""

from __future__ import annotations

import errno
from typing import Any

import gevent


class ClientStalled(OSError):
    """The client took no byte for the whole allowed time (errno ``ETIMEDOUT``, which the
    server counts as a client gone)."""


def send_all(sock: Any, data: bytes, stall_seconds: float) -> None:
    """Write all of ``data`` to a gevent socket; :class:`ClientStalled` when one wait for
    room in it lasts ``stall_seconds``."""
    view = memoryview(data)
    while view:
        timer = gevent.Timeout(stall_seconds)
        try:
            with timer:
                sent = sock.send(view)
        except gevent.Timeout as fired:
            if fired is not timer:
                raise  # another's timeout, not this write's
            raise ClientStalled(
                errno.ETIMEDOUT, f"the client read nothing for {stall_seconds:g} s"
            ) from None
        view = view[sent:]

"""The guard every API surface puts around a streamed response: once the status line is
out, an error can no longer change it, so it becomes the surface's own in-band error
frames (and nothing follows them); a client that left gets nothing; and the generation is
cancelled however the stream ends, so its engine sequence is freed at once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from power_core.errors import PowerError
from power_core.server.disconnect import is_client_gone_error

Frame = TypeVar("Frame")


def guarded_stream(
    frames: Iterator[Frame],
    cancel: Callable[[], None],
    error_frames: Callable[[PowerError | None], Iterable[Frame]],
    log: logging.Logger,
    *,
    end: Iterable[Frame] = (),
) -> Iterator[Frame]:
    """``frames``, then ``end``; a :class:`PowerError` becomes ``error_frames(exc)`` and a
    bug (logged with its traceback) ``error_frames(None)``, after which nothing is sent."""
    try:
        yield from frames
    except PowerError as exc:
        yield from error_frames(exc)
        return
    except Exception as exc:  # a bug mid-stream: logged with its traceback, reported in-band
        if is_client_gone_error(exc):  # nobody to report to
            log.info("the client left a streamed response (%s)", type(exc).__name__)
            return
        log.exception("error while streaming a response")
        yield from error_frames(None)
        return
    finally:
        cancel()
    yield from end

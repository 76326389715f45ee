"""Generations consumed as one stream of ``(index, event)`` pairs, for streamed responses.

``/v1/completions`` with a list of prompts runs one generation per prompt. The engine
already runs the jobs side by side; pumping each stream on its own thread (a greenlet under
the server's gevent) lets every event reach the client as soon as it exists, instead of
the second prompt's output waiting for the first prompt's to finish.

Each pump reads its stream to the very end, even after the client went away and the
stream was cancelled: the engine still reports the cancelled job's last events, and a
consumer that stopped listening before them could miss the stream's closing.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from power_core.generation import GenerationStream
from power_core.types import GenerationEvent

_Item = tuple[int, GenerationEvent | None, Exception | None]


def merged_events(streams: list[GenerationStream]) -> Iterator[tuple[int, GenerationEvent]]:
    """Events of every stream as they come, tagged with the stream's index.

    An error in any stream is raised here; closing this iterator (or an error) cancels
    every stream.
    """
    if len(streams) == 1:  # nothing to interleave: no pump, no queue, one switch less
        yield from _single(streams[0])
        return
    items: queue.Queue[_Item] = queue.Queue()

    def pump(index: int, stream: GenerationStream) -> None:
        try:
            for event in stream:
                items.put((index, event, None))
        except Exception as exc:  # handed to the consumer, which raises it
            items.put((index, None, exc))
            return
        items.put((index, None, None))

    for index, stream in enumerate(streams):
        threading.Thread(
            target=pump, args=(index, stream), daemon=True, name=f"a3s-power-prompt-{index}"
        ).start()
    remaining = len(streams)
    try:
        while remaining:
            index, event, error = items.get()
            if error is not None:
                raise error
            if event is None:
                remaining -= 1
                continue
            yield index, event
    finally:
        cancel_all(streams)


def _single(stream: GenerationStream) -> Iterator[tuple[int, GenerationEvent]]:
    try:
        for event in stream:
            yield 0, event
    finally:
        stream.cancel()


def cancel_all(streams: list[GenerationStream]) -> None:
    """Cancel every stream (a no-op for finished ones)."""
    for stream in streams:
        stream.cancel()

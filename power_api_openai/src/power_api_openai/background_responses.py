"""Background responses (``background: true``): the generation runs on after the request
that started it returns (``status: "queued"``) or its client leaves; ``GET
/v1/responses/{id}`` shows it as it stands, ``?stream=true&starting_after=N`` streams its
events after sequence number N (those already made, then the rest as they come), and
``POST /v1/responses/{id}/cancel`` stops it (``status: "cancelled"``).

A run keeps its events while it runs and for :data:`KEPT_SECONDS` after (OpenAI keeps a
background response's stream about 10 minutes); its final response, completed, cut short,
failed or cancelled, is kept in the server's :class:`ResponseStore` like any other.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from power_api_openai.sse import event_frame
from power_core.generation import GenerationStream

log = logging.getLogger("power_api_openai")

if TYPE_CHECKING:  # the builder's module starts runs: imported there, named here
    from power_api_openai.responses import ResponseBuilder

#: seconds a finished run's events stay to be streamed again
KEPT_SECONDS = 600.0
#: seconds a follower waits for the next event before it sends a keep-alive
PING_SECONDS = 5.0
#: finished runs kept at most (the oldest go first)
KEPT_RUNS = 256


class BackgroundRun:
    """One background response: its builder, generation and the events made so far."""

    def __init__(self, builder: ResponseBuilder, stream: GenerationStream) -> None:
        self.builder = builder
        self.stream = stream
        #: (sequence number, SSE frame) of each event, written as it was made
        self.events: list[tuple[int, str]] = []
        #: the response as it ended (failed ones with their error)
        self.final: dict[str, Any] | None = None
        self.cancelled = False
        self.finished_at: float | None = None
        #: the response as its request answered it (``queued``)
        self.queued: dict[str, Any] = {}
        # a gevent condition in the server (``threading`` is patched there)
        self._changed = threading.Condition()

    @property
    def done(self) -> bool:
        return self.finished_at is not None

    def publish(self, event: dict[str, Any]) -> None:
        with self._changed:
            self.events.append((event["sequence_number"], event_frame(event)))
            if event["type"] in ("response.completed", "response.incomplete", "response.failed"):
                self.final = event["response"]
            self._changed.notify_all()

    def finish(self) -> None:
        with self._changed:
            self.finished_at = time.monotonic()
            self._changed.notify_all()

    def wait(self, seconds: float) -> None:
        with self._changed:
            if not self.done:
                self._changed.wait(seconds)

    def follow(self, after: int) -> Iterator[str | None]:
        """The frames of its events after sequence number ``after``, those made and those
        to come, until it ends; ``None`` now and then while none comes (a keep-alive)."""
        index = 0
        while True:
            with self._changed:
                if index >= len(self.events) and not self.done:
                    self._changed.wait(PING_SECONDS)
                batch = self.events[index:]
                index = len(self.events)
                ended = self.done
            if not batch and not ended:
                yield None
            for sequence, frame in batch:
                if sequence > after:
                    yield frame
            if ended and index >= len(self.events):
                return

    def snapshot(self) -> dict[str, Any]:
        """The response as it stands, or as it ended."""
        if self.final is not None and not self.cancelled:
            return self.final
        return self.builder.response()

    def cancel(self) -> None:
        if not self.done:
            self.cancelled = True
            self.stream.cancel()


class BackgroundRuns:
    """The background responses of one server, by id."""

    def __init__(self) -> None:
        self._runs: dict[str, BackgroundRun] = {}

    def get(self, response_id: str) -> BackgroundRun | None:
        self._drop_expired()
        return self._runs.get(response_id)

    def forget(self, response_id: str) -> None:
        self._runs.pop(response_id, None)

    def start(
        self,
        builder: ResponseBuilder,
        stream: GenerationStream,
        events: Callable[[BackgroundRun], Iterator[dict[str, Any] | None]],
        keep: Callable[[dict[str, Any]], object],
    ) -> BackgroundRun:
        """Run ``events(run)`` on a thread of its own (a greenlet in the server), keeping
        each event; a run that fails or is cancelled is given to ``keep`` as it ends (one
        that completes is kept by ``events`` itself, before its last event)."""
        builder.status = "queued"
        run = BackgroundRun(builder, stream)
        self._drop_expired()
        self._runs[builder.id] = run

        def work() -> None:
            builder.status = "in_progress"
            try:
                for event in events(run):
                    if event is not None and not run.cancelled:
                        run.publish(event)
            finally:
                try:
                    if run.cancelled:
                        builder.status = "cancelled"
                        keep(builder.response())
                    elif builder.status == "failed":
                        keep(run.final or builder.response())
                except Exception:  # its end is kept in memory all the same
                    log.exception("background response %s was not kept", builder.id)
                finally:
                    run.finish()

        queued = run.snapshot()
        threading.Thread(target=work, name=f"background {builder.id}", daemon=True).start()
        run.queued = queued
        return run

    def _drop_expired(self) -> None:
        now = time.monotonic()
        finished = [
            (run.finished_at, response_id)
            for response_id, run in self._runs.items()
            if run.finished_at is not None
        ]
        finished.sort()
        for index, (at, response_id) in enumerate(finished):
            if now - at > KEPT_SECONDS or index < len(finished) - KEPT_RUNS:
                del self._runs[response_id]

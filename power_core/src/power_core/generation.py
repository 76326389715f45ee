"""From a :class:`GenerationRequest` to a stream of events: the model leased, the job
queued (built by :mod:`power_core.job_building`), and the engine's text split into answer,
reasoning and tool calls for the API surfaces to render.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from power_core.arrivals import ARRIVING, let_arrived_requests_in
from power_core.chat.output import OutputParser
from power_core.concurrency import Delivery, EventChannel
from power_core.engine import CompletionJob, Engine, EventStream
from power_core.errors import Cancelled
from power_core.job_building import build_job, prompt_opens_thinking
from power_core.scheduler import LoadedModel, ModelScheduler
from power_core.types import (
    ChoiceDone,
    FinishReason,
    GenerationDone,
    GenerationEvent,
    GenerationRequest,
    PromptProgress,
    TextDelta,
)

log = logging.getLogger(__name__)

#: seconds between looks at a watched client (see GenerationStream.cancel_when)
CLIENT_CHECK_INTERVAL = 0.25


def _submit(engine: Engine, job: CompletionJob) -> EventStream:
    """Queue ``job``; to an idle engine, together with the requests that arrived with it
    (see :mod:`power_core.arrivals`)."""
    if engine.active_jobs():
        return engine.submit(job)
    with ARRIVING.on_the_way():
        let_arrived_requests_in()
        return engine.submit(job)


class GenerationStream:
    """Events of one generation; iterate once. :meth:`cancel` stops it early.

    The model stays leased until the stream is exhausted, cancelled or closed.
    """

    def __init__(
        self,
        scheduler: ModelScheduler,
        entry: LoadedModel,
        request: GenerationRequest,
        started_ns: int,
        load_ns: int,
    ) -> None:
        self.model = entry.model
        self.request = request
        self._scheduler = scheduler
        self._entry = entry
        self._started_ns = started_ns
        self._load_ns = load_ns
        self._released = False
        self._done = False
        self._client_gone: Callable[[], bool] | None = None
        self._next_client_check = 0.0
        #: whether any event came yet: a job still queued behind a full engine sends none
        self.output_started = False
        #: what failed on the engine thread in deliver_text_directly, for the consumer to log
        self._direct_error: Exception | None = None
        try:
            self.job = build_job(entry.model, entry.engine, request)
            self.prompt_text = self.job.prompt if isinstance(self.job.prompt, str) else None
            self._stream: EventStream = _submit(entry.engine, self.job)
        except BaseException:
            self._release()
            raise
        thinking_open = prompt_opens_thinking(entry.engine, self.job.prompt)
        parse_tools = bool(request.tools) and request.tool_choice != "none"
        self._parsers = [
            OutputParser(
                choice=i,
                parse_tools=parse_tools,
                think=request.think,
                in_thinking=thinking_open,
                forced_calls=request.forces_calls,
                tool_names=frozenset(tool.name for tool in request.tools),
                single_call=not request.parallel_tool_calls,
            )
            for i in range(request.n)
        ]

    def cancel_when(self, client_gone: Callable[[], bool]) -> None:
        """While iterating, ask ``client_gone()`` every :data:`CLIENT_CHECK_INTERVAL`
        seconds; once it says yes, cancel and raise :class:`Cancelled`."""
        self._client_gone = client_gone

    def _check_client(self) -> None:
        now = time.monotonic()
        if now >= self._next_client_check:
            self._next_client_check = now + CLIENT_CHECK_INTERVAL
            if self._client_gone is not None and self._client_gone():
                raise Cancelled("the client closed the connection")

    def __iter__(self) -> Iterator[GenerationEvent]:
        try:
            for event in self._stream:
                self.output_started = True
                if self._direct_error is not None:
                    log.error(
                        "writing a streamed token directly failed", exc_info=self._direct_error
                    )
                    self._direct_error = None
                if self._client_gone is not None:
                    self._check_client()
                if isinstance(event, TextDelta):
                    yield from self._parsers[event.choice].feed(event.text, event.logprobs)
                elif isinstance(event, ChoiceDone):
                    parser = self._parsers[event.choice]
                    yield from parser.finish()
                    reason: FinishReason = event.reason
                    if parser.tool_calls and reason == "stop":
                        reason = "tool_calls"
                    yield replace(event, reason=reason)
                elif isinstance(event, GenerationDone):
                    usage = replace(
                        event.usage,
                        reasoning_tokens=min(
                            self._reasoning_tokens(), event.usage.completion_tokens
                        ),
                        load_ns=self._load_ns,
                        total_ns=time.perf_counter_ns() - self._started_ns,
                    )
                    reason = event.reason
                    if self._parsers[0].tool_calls and reason == "stop":
                        reason = "tool_calls"
                    self._done = True
                    yield GenerationDone(usage=usage, reason=reason)
                else:
                    yield event
        finally:
            if not self._done:  # the consumer stopped early: free the engine's slot
                self._stream.cancel()
            self._release()

    def _reasoning_tokens(self) -> int:
        """The tokens of every choice's reasoning (its text as the model tokenizes it: the
        engine counts tokens, not which of them were reasoning; at most all of them)."""
        texts = ["".join(parser.reasoning) for parser in self._parsers if parser.reasoning]
        return sum(len(self._entry.engine.tokenize(text)) for text in texts)

    @property
    def can_deliver_text_directly(self) -> bool:
        """Whether :meth:`deliver_text_directly` would take over: this engine's stream, one
        choice, nothing to parse out of its text, no client check."""
        return (
            isinstance(self._stream, EventChannel)
            and self.request.n == 1
            and self._parsers[0].passes_text_through
            and self._client_gone is None
        )

    def deliver_text_directly(self, write: Callable[[str], bool]) -> bool:
        """Let the engine's thread hand this stream's plain text to ``write`` itself while
        the consumer waits for its next event (see :mod:`power_core.server.direct`).

        Only text of a single choice with nothing to parse out of it (no reasoning, no tool
        calls) and no log-probabilities goes that way; prompt progress still comes through
        iteration, and the first other event, or a piece ``write`` declines (returns
        False), ends the direct way: it and every later event come through iteration as
        usual. Call it only between two events (the consumer's writes never overlap
        ``write``). Returns False when the engine's stream cannot do this (another
        backend's), or the request can not (several choices, reasoning, tools).
        """
        channel = self._stream
        if not self.can_deliver_text_directly or not isinstance(channel, EventChannel):
            return False

        def take(event: Any) -> Delivery:
            self.output_started = True
            if type(event) is PromptProgress:
                # the surfaces only ping while a prompt is unfinished; the finished one comes
                # in the same engine step as the first token, which it must not hold back
                done = event.processed >= event.total
                return Delivery.TAKEN if done else Delivery.QUEUED
            if type(event) is not TextDelta or event.logprobs or not event.text:
                return Delivery.DECLINED
            try:
                return Delivery.TAKEN if write(event.text) else Delivery.DECLINED
            except Exception as exc:  # a bug must not reach the engine thread: decline, and
                self._direct_error = exc  # let the consumer log it (this thread holds a lock)
                return Delivery.DECLINED

        channel.deliver_while_waiting(take)
        return True

    @property
    def entry(self) -> LoadedModel:
        """The loaded model this stream holds a lease on."""
        return self._entry

    @property
    def over(self) -> bool:
        """Whether the stream ended, was cancelled or closed (the model is given back)."""
        return self._released

    def cancel(self) -> None:
        """Stop generating (client went away) and give the model back."""
        self._stream.cancel()
        self._release()

    def close(self) -> None:
        """Alias of :meth:`cancel`, so ``contextlib.closing`` works."""
        self.cancel()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._scheduler.release(self._entry)

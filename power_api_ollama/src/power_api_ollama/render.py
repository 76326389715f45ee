"""Core generation events rendered as Ollama's ``/api/generate`` and ``/api/chat`` objects."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from power_api_ollama.wire import now_rfc3339
from power_core.errors import PowerError
from power_core.types import (
    GenerationDone,
    GenerationEvent,
    TextDelta,
    ThinkingDelta,
    TokenLogprob,
    ToolCall,
    ToolCallEvent,
)

#: the core's finish reasons as Ollama names them (Ollama says "stop" after tool calls)
_DONE_REASONS = {"tool_calls": "stop", "cancelled": "stop"}


def logprob_json(entry: TokenLogprob) -> dict[str, Any]:
    """One token's log-probability as Ollama's ``Logprob``."""
    payload: dict[str, Any] = {
        "token": entry.token,
        "logprob": entry.logprob,
        "bytes": list(entry.bytes),
    }
    if entry.top:
        payload["top_logprobs"] = [
            {"token": token, "logprob": logprob, "bytes": raw}
            for token, logprob, raw in entry.alternatives()
        ]
    return payload


def tool_call_json(call: ToolCall, index: int) -> dict[str, Any]:
    """A tool call as Ollama's ``message.tool_calls`` entry (arguments stay an object)."""
    payload: dict[str, Any] = {
        "function": {"index": index, "name": call.name, "arguments": call.arguments}
    }
    if call.id:
        payload["id"] = call.id
    return payload


def done_fields(done: GenerationDone) -> dict[str, Any]:
    """The statistics of the final object; every duration in nanoseconds."""
    usage = done.usage
    return {
        "done": True,
        "done_reason": _DONE_REASONS.get(done.reason, done.reason),
        "total_duration": int(usage.total_ns),
        "load_duration": int(usage.load_ns),
        "prompt_eval_count": int(usage.prompt_tokens),
        "prompt_eval_duration": int(usage.prompt_eval_ns),
        "eval_count": int(usage.completion_tokens),
        "eval_duration": int(usage.eval_ns),
    }


class OllamaRenderer:
    """Turns one generation's events into Ollama objects, streamed or collected.

    ``chat`` selects ``/api/chat``'s ``message`` shape over ``/api/generate``'s
    ``response``. Only choice 0 exists on this surface.
    """

    def __init__(self, model: str, *, chat: bool) -> None:
        self.model = model
        self.chat = chat
        #: set once the final ``GenerationDone`` was rendered
        self.finished = False

    def _head(self) -> dict[str, Any]:
        return {"model": self.model, "created_at": now_rfc3339()}

    def _piece(
        self,
        text: str = "",
        thinking: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        payload = self._head()
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if thinking:
                message["thinking"] = thinking
            if tool_calls:
                message["tool_calls"] = tool_calls
            payload["message"] = message
        else:
            payload["response"] = text
            if thinking:
                payload["thinking"] = thinking
        return payload

    def _final(
        self,
        done: GenerationDone,
        text: str = "",
        thinking: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        payload = self._piece(text, thinking, tool_calls)
        payload.update(done_fields(done))
        if not self.chat and done.usage.context is not None:
            payload["context"] = list(done.usage.context)
        self.finished = True
        return payload

    def text_chunk(self, text: str) -> dict[str, Any]:
        """The streamed object of one piece of answer text."""
        payload = self._piece(text)
        payload["done"] = False
        return payload

    def stream(self, events: Iterable[GenerationEvent]) -> Iterator[dict[str, Any]]:
        """One object per text, thinking or tool-call event, then the final one."""
        for event in events:
            if isinstance(event, TextDelta):
                if event.choice != 0 or (not event.text and not event.logprobs):
                    continue
                payload = self.text_chunk(event.text)
                if event.logprobs:
                    payload["logprobs"] = [logprob_json(e) for e in event.logprobs]
                yield payload
            elif isinstance(event, ThinkingDelta):
                if event.choice == 0 and event.text:
                    payload = self._piece(thinking=event.text)
                    payload["done"] = False
                    yield payload
            elif isinstance(event, ToolCallEvent):
                # Ollama sends tool calls in a chunk of their own before the final one.
                if self.chat and event.choice == 0:
                    payload = self._piece(tool_calls=[tool_call_json(event.call, event.index)])
                    payload["done"] = False
                    yield payload
            elif isinstance(event, GenerationDone):
                yield self._final(event)

    def collect(self, events: Iterable[GenerationEvent]) -> dict[str, Any]:
        """The single object of ``stream: false``: all text, thinking and calls at once."""
        text: list[str] = []
        thinking: list[str] = []
        calls: list[dict[str, Any]] = []
        logprobs: list[dict[str, Any]] = []
        final: dict[str, Any] | None = None
        for event in events:
            if isinstance(event, TextDelta) and event.choice == 0:
                text.append(event.text)
                logprobs.extend(logprob_json(e) for e in event.logprobs)
            elif isinstance(event, ThinkingDelta) and event.choice == 0:
                thinking.append(event.text)
            elif isinstance(event, ToolCallEvent) and event.choice == 0 and self.chat:
                calls.append(tool_call_json(event.call, event.index))
            elif isinstance(event, GenerationDone):
                final = self._final(event, "".join(text), "".join(thinking) or None, calls)
        if final is None:
            raise PowerError("the generation ended without its final event")
        if logprobs:
            final["logprobs"] = logprobs
        return final

    def loaded(self, reason: str) -> dict[str, Any]:
        """The answer to an empty prompt or message list: ``load`` or ``unload``."""
        payload = self._piece()
        payload.update({"done": True, "done_reason": reason})
        return payload

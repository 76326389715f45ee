"""Turning the engine's streamed text into text, reasoning and tool-call events.

The engine knows only text. :class:`OutputParser` splits it, per choice, into
:class:`~power_core.types.TextDelta` (what the user sees),
:class:`~power_core.types.ThinkingDelta` (reasoning between ``<think>`` and ``</think>``) and
:class:`~power_core.types.ToolCallEvent` (calls found by
:class:`~power_core.chat.tool_calls.ToolCallScanner`). Text is passed on as soon as it cannot be
the start of a tag or a call, so ordinary output streams without delay.
"""

from __future__ import annotations

from collections.abc import Collection

from power_core.chat.tool_calls import ToolCallScanner
from power_core.types import (
    GenerationEvent,
    TextDelta,
    ThinkingDelta,
    TokenLogprob,
    ToolCall,
    ToolCallEvent,
)

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def opens_thinking(prompt: str) -> bool:
    """Whether a rendered prompt ends inside an opened ``<think>`` block.

    Reasoning templates (Qwen3, DeepSeek-R1) may end the generation prompt with ``<think>``;
    the output then starts with reasoning, so pass the result as ``in_thinking``.
    """
    return prompt.rstrip().endswith(THINK_OPEN)


def _partial_tag(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that is a proper beginning of ``tag``."""
    for size in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class ReasoningSplitter:
    """Splits text into reasoning and content at ``<think>`` and ``</think>``.

    A ``<think>`` tag counts only at the start of the output (after whitespace); with
    ``in_thinking`` the prompt already opened it. Whitespace just inside the tags and right
    after ``</think>`` is dropped.
    """

    def __init__(self, *, in_thinking: bool = False) -> None:
        self._state = "thinking" if in_thinking else "start"
        self._buf = ""
        self._trim_thinking = in_thinking
        self._trim_content = False

    @property
    def holding(self) -> bool:
        """Whether some text is held back, waiting to be decided."""
        return bool(self._buf)

    def feed(self, text: str, *, final: bool = False) -> list[tuple[bool, str]]:
        """Take more text; return ``(is_reasoning, text)`` pieces that are now decided."""
        self._buf += text
        pieces: list[tuple[bool, str]] = []
        while True:
            if self._state == "start":
                head = self._buf.lstrip()
                if head.startswith(THINK_OPEN):
                    self._state, self._trim_thinking = "thinking", True
                    self._buf = head[len(THINK_OPEN) :]
                    continue
                if not final and (not head or THINK_OPEN.startswith(head)):
                    break
                self._state = "content"
            elif self._state == "thinking":
                end = self._buf.find(THINK_CLOSE)
                if end != -1:
                    self._add(pieces, True, self._buf[:end].rstrip())
                    self._buf = self._buf[end + len(THINK_CLOSE) :]
                    self._state, self._trim_content = "content", True
                    continue
                if final:
                    self._add(pieces, True, self._buf)
                    self._buf = ""
                    break
                # hold a possible start of </think> and the whitespace before it
                keep = _partial_tag(self._buf, THINK_CLOSE)
                body = self._buf[: len(self._buf) - keep]
                shown = body.rstrip()
                self._add(pieces, True, shown)
                self._buf = self._buf[len(shown) :]
                break
            else:
                self._add(pieces, False, self._buf)
                self._buf = ""
                break
        return pieces

    def _add(self, pieces: list[tuple[bool, str]], reasoning: bool, text: str) -> None:
        if reasoning and self._trim_thinking:
            text = text.lstrip()
            self._trim_thinking = not text
        elif not reasoning and self._trim_content:
            text = text.lstrip()
            self._trim_content = not text
        if text:
            pieces.append((reasoning, text))


class OutputParser:
    """Turns one choice's streamed output text into generation events.

    :param choice: the choice index the events carry.
    :param parse_tools: recognise tool calls (see :mod:`power_core.chat.tool_calls`); they are
        reported by :meth:`finish`, text that is not a valid call is reported as text.
    :param think: ``None`` leaves reasoning inline as text; ``True`` reports it as
        :class:`ThinkingDelta`; ``False`` drops it.
    :param in_thinking: the prompt already opened a ``<think>`` block.
    :param forced_calls: a grammar forces the output to be tool calls (``tool_choice``
        ``required`` or a function's name): a list of calls cut short by a token limit
        still reports the calls it completed.
    :param tool_names: the tools the request declared: a call naming another is text, as
        Ollama reads it (``None``: any name counts).
    :param single_call: report the first tool call only (OpenAI's
        ``parallel_tool_calls: false``: zero or one call).

    Log-probabilities fed with text travel with the visible text they arrived with; those of
    text that became reasoning or a tool call are dropped.
    """

    def __init__(
        self,
        *,
        choice: int = 0,
        parse_tools: bool,
        think: bool | None,
        in_thinking: bool = False,
        forced_calls: bool = False,
        tool_names: Collection[str] | None = None,
        single_call: bool = False,
    ) -> None:
        self.choice = choice
        self._think = think
        self._reasoning = ReasoningSplitter(in_thinking=in_thinking) if think is not None else None
        self._scanner = (
            ToolCallScanner(forced=forced_calls, names=tool_names) if parse_tools else None
        )
        self._single_call = single_call
        #: the pieces of reasoning told apart so far (shown or dropped), to count its tokens
        self.reasoning: list[str] = []
        self._logprobs: list[TokenLogprob] = []
        self._finished = False

    @property
    def passes_text_through(self) -> bool:
        """Whether every piece of output is answer text as it comes (nothing to split off)."""
        return self._reasoning is None and self._scanner is None and not self._finished

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls found so far."""
        if self._scanner is None:
            return []
        calls = self._scanner.calls
        return calls[:1] if self._single_call else list(calls)

    def feed(self, text: str, logprobs: list[TokenLogprob] | None = None) -> list[GenerationEvent]:
        """Take the next piece of output; return the events it completes."""
        if self._finished:
            raise RuntimeError("OutputParser.feed() after finish()")
        if logprobs:
            self._logprobs.extend(logprobs)
        return self._events(text, final=False)

    def finish(self) -> list[GenerationEvent]:
        """Decide all held-back text and return the last events, tool calls at the end."""
        if self._finished:
            return []
        events = self._events("", final=True)
        self._finished = True
        if self._scanner is not None:
            events.extend(
                ToolCallEvent(self.choice, index, call)
                for index, call in enumerate(self.tool_calls)
            )
        return events

    def _events(self, text: str, *, final: bool) -> list[GenerationEvent]:
        if self._reasoning is None:
            pieces = [(False, text)]
        else:
            pieces = self._reasoning.feed(text, final=final)
        events: list[GenerationEvent] = []
        for reasoning, piece in pieces:
            if reasoning:
                self.reasoning.append(piece)
                if self._think:
                    self._append(events, ThinkingDelta(self.choice, piece))
                continue
            if self._scanner is not None:
                piece = self._scanner.feed(piece)
            if piece:
                self._append(events, TextDelta(self.choice, piece))
        if final and self._scanner is not None:
            rest = self._scanner.finish()
            if rest:
                self._append(events, TextDelta(self.choice, rest))
        self._attach_logprobs(events, final)
        return events

    @staticmethod
    def _append(events: list[GenerationEvent], event: TextDelta | ThinkingDelta) -> None:
        last = events[-1] if events else None
        if type(last) is type(event) and isinstance(last, TextDelta | ThinkingDelta):
            last.text += event.text
        else:
            events.append(event)

    def _attach_logprobs(self, events: list[GenerationEvent], final: bool) -> None:
        if not self._logprobs:
            return
        for event in events:
            if isinstance(event, TextDelta):
                event.logprobs = self._logprobs
                self._logprobs = []
                return
        held = (self._reasoning is not None and self._reasoning.holding) or (
            self._scanner is not None and self._scanner.holding
        )
        if final or not held:
            self._logprobs = []

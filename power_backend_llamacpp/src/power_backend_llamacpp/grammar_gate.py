"""When a choice's grammar starts, for a grammar that does not constrain all the output.

:class:`GrammarGate`: after the free span a job leaves it (its reasoning). A model asked
for JSON that reasons first writes ``<think>...</think>`` and then its answer; a grammar
applied from the first token would make the reasoning itself JSON and leave no answer. The
gate watches the bytes of the tokens sampled without the grammar and says when the answer
begins: at the token after the span's closer, or at once when the output starts with
something other than the span's whole opener (whitespace aside).

:class:`CallTrigger`: after the first opener of a tool-call block (``<tool_call>``) that
is not in the model's reasoning; the grammar then constrains the calls.
"""

from __future__ import annotations

from power_core.engine import CallBlocks, FreeSpan


class GrammarGate:
    """Tells, token by token, whether output is still outside its grammar; once it says
    no, the grammar applies to that token and to every token after it."""

    __slots__ = ("_closer", "_held", "_inside", "_opener", "_shut")

    def __init__(self, span: FreeSpan) -> None:
        self._opener = span.opener.encode()
        self._closer = span.closer.encode()
        self._inside = span.opened
        #: the span is over (closed, or never opened): the answer has begun
        self._shut = False
        #: bytes that may still complete the closer
        self._held = b""

    def passes(self, piece: bytes) -> bool:
        """Whether a token of text ``piece`` is free of the grammar (it is, then, taken as
        output); ``False`` means this token is the answer's first."""
        if self._shut:
            return False
        text = self._held + piece
        if not self._inside:
            head = text.lstrip()
            if not head:  # whitespace before anything
                return True
            if not head.startswith(self._opener):
                # an answer without reasoning; or an opener cut across tokens, whose first
                # part is already out: the grammar takes over either way (a thinking
                # model's opener is one token)
                self._shut = True
                return False
            self._inside = True
            text = head[len(self._opener) :]
        if self._closer in text:
            self._shut = True
        else:
            keep = len(self._closer) - 1  # the most of a closer that text can end with
            self._held = text[-keep:] if keep else b""
        return True


class CallTrigger:
    """Tells, token by token, whether output has opened its first tool-call block; until
    then it is free of the grammar, which takes over right after the opener."""

    __slots__ = ("_close_thought", "_held", "_inside", "_open_thought", "_opener")

    def __init__(self, blocks: CallBlocks) -> None:
        self._opener = blocks.opener.encode()
        reasoning = blocks.reasoning
        self._open_thought = reasoning.opener.encode() if reasoning else b""
        self._close_thought = reasoning.closer.encode() if reasoning else b""
        self._inside = bool(reasoning and reasoning.opened)
        #: bytes that may still complete a marker
        self._held = b""

    def watch(self, piece: bytes) -> bytes | None:
        """Read a token of text ``piece`` (output, free of the grammar); returns what
        follows the opener in it (usually nothing) once the opener is complete, which the
        grammar reads first, else ``None``."""
        text = self._held + piece
        while True:
            if self._inside:
                end = text.find(self._close_thought)
                if end < 0:
                    self._held = _tail(text, len(self._close_thought))
                    return None
                text, self._inside = text[end + len(self._close_thought) :], False
            at = text.find(self._opener)
            thought = text.find(self._open_thought) if self._open_thought else -1
            if thought >= 0 and (at < 0 or thought < at):
                text, self._inside = text[thought + len(self._open_thought) :], True
                continue
            if at >= 0:
                return text[at + len(self._opener) :]
            self._held = _tail(text, max(len(self._opener), len(self._open_thought)))
            return None


def _tail(text: bytes, marker_length: int) -> bytes:
    """The end of ``text`` that may be the start of a marker of ``marker_length`` bytes
    (text that holds no whole marker)."""
    keep = marker_length - 1
    return text[-keep:] if keep > 0 else b""

"""When a choice's grammar starts: after the free span a job leaves it (its reasoning).

A model asked for JSON that reasons first writes ``<think>...</think>`` and then its answer;
a grammar applied from the first token would make the reasoning itself JSON and leave no
answer. The gate watches the bytes of the tokens sampled without the grammar and says when
the answer begins: at the token after the span's closer, or at once when the output starts
with something other than the span's whole opener (whitespace aside).
"""

from __future__ import annotations

from power_core.engine import FreeSpan


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

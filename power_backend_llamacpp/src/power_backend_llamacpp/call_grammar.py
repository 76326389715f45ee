"""A grammar of tool calls that starts where the output opens one (llama.cpp's server calls
such a grammar lazy).

A model offered tools chooses whether to call one: its output is free until it writes the
opener of a call block (``<tool_call>``) outside its reasoning (:class:`CallTrigger`).
From there on the grammar of :func:`.output_grammars.call_blocks_grammar` holds it to calls
of the declared tools with the arguments they declare (:class:`LateCallGrammar`), so a
small model's call is valid JSON that names a real tool. The grammar is compiled only
then: until a call opens, a chat with tools samples as one without, and only the text of
each token is watched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import llama_cpp as lc

from power_backend_llamacpp.vocab import Vocabulary
from power_core.engine import CallBlocks


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


class LateCallGrammar:
    """The grammar of one choice's tool calls, from the output's first opener on."""

    __slots__ = ("_after", "_grammar", "_trigger", "_vocab")

    def __init__(self, blocks: CallBlocks, grammar: str, vocab: Vocabulary) -> None:
        self._trigger = CallTrigger(blocks)
        self._grammar = grammar
        self._vocab = vocab
        self._after = b""

    def watch(self, piece: bytes) -> bool:
        """Read a token of output, ``piece``; whether it completed the first counted
        opener (the grammar then starts: :meth:`start`)."""
        after = self._trigger.watch(piece)
        if after is None:
            return False
        self._after = after
        return True

    def start(self, allows: Callable[[Any, int], bool]) -> Any | None:
        """The compiled grammar sampler, having read what followed the opener in its
        token (``allows(sampler, token)`` tells whether it accepts a token). ``None``
        when it cannot be compiled or cannot read that: the output then goes on free,
        and the call is read as the model writes it."""
        try:
            text = self._after.decode()
        except UnicodeDecodeError:  # a character cut in two: never JSON's first
            return None
        sampler = lc.llama_sampler_init_grammar(self._vocab.handle, self._grammar.encode(), b"root")
        if not sampler:
            return None
        for token in self._vocab.tokenize(text, add_special=False, parse_special=False):
            if not allows(sampler, token):
                lc.llama_sampler_free(sampler)
                return None
            lc.llama_sampler_accept(sampler, token)
        return sampler

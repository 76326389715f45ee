"""Where a grammar that leaves part of the output free starts: the grammar gate (after
the reasoning) and the call trigger (after the first tool-call opener)."""

from __future__ import annotations

import pytest

from power_backend_llamacpp.call_grammar import CallTrigger
from power_backend_llamacpp.grammar_gate import GrammarGate
from power_core.engine import CallBlocks, FreeSpan

THINKING = FreeSpan("<think>", "</think>")


def verdicts(span: FreeSpan, pieces: list[bytes]) -> list[bool]:
    gate = GrammarGate(span)
    return [gate.passes(piece) for piece in pieces]


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        # reasoning, then the answer's first token meets the grammar
        ([b"<think>", b"hm", b"</think>", b"{"], [True, True, True, False]),
        # whitespace first, the closer split across tokens
        ([b"\n ", b"<think>", b"a</", b"thi", b"nk>", b"\n"], [True] * 5 + [False]),
        # an opener cut across tokens: its first part is out already, so the grammar takes
        # over at once rather than after something that may not be the opener
        ([b"<th", b"ink>"], [False, False]),
        ([b"<", b"div>"], [False, False]),
        # an answer without reasoning is constrained from its first token
        ([b"{", b"<think>"], [False, False]),
        ([b"  ", b"<thing"], [True, False]),
        # once the answer began, nothing opens the span again
        ([b"<think>x</think>", b"<think>"], [True, False]),
    ],
)
def test_the_gate_shuts_where_the_answer_begins(pieces: list[bytes], expected: list[bool]) -> None:
    assert verdicts(THINKING, pieces) == expected


def test_a_span_the_prompt_opened_ends_at_its_closer() -> None:
    opened = FreeSpan("<think>", "</think>", opened=True)
    pieces = [b"{not JSON}", b"still thinking </th", b"ink>", b"{"]
    assert verdicts(opened, pieces) == [True, True, True, False]
    # a closer's start that goes on as something else keeps the span open
    assert verdicts(opened, [b"</thi", b"s is text", b"</think>", b"{"]) == [
        True,
        True,
        True,
        False,
    ]


def call_opened_at(pieces: list[bytes], reasoning: FreeSpan | None = None) -> tuple[int, bytes]:
    """The index of the token that completes the first counted opener, and what follows
    it in that token; ``(-1, b"")`` when none does."""
    trigger = CallTrigger(CallBlocks("<tool_call>", "</tool_call>", {}, reasoning=reasoning))
    for index, piece in enumerate(pieces):
        after = trigger.watch(piece)
        if after is not None:
            return index, after
    return -1, b""


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        # text first, then the opener in a token of its own
        ([b"Sure.", b"\n", b"<tool_call>", b"\n{"], (2, b"")),
        # the opener cut across tokens, one of them holding what follows it
        ([b"<", b"tool", b"_call", b">\n{"], (3, b"\n{")),
        ([b"a <tool_", b'call>{"name'], (1, b'{"name')),
        # an opener's start that goes on as something else is text
        ([b"<tool", b"box>", b"<tool_call>"], (2, b"")),
        # no opener: all free
        ([b"<tool_call", b" not"], (-1, b"")),
    ],
)
def test_the_call_trigger_fires_after_the_first_opener(
    pieces: list[bytes], expected: tuple[int, bytes]
) -> None:
    assert call_opened_at(pieces) == expected


def test_an_opener_in_the_reasoning_does_not_count() -> None:
    thinking = THINKING
    mused = [b"<think>", b"maybe <tool_call>", b" then", b"</think>", b"\n<tool_call>", b"{"]
    assert call_opened_at(mused, thinking) == (4, b"")
    # the closer and the opener in one token, and a span the prompt opened
    opened = FreeSpan("<think>", "</think>", opened=True)
    assert call_opened_at([b"<tool_call> no", b"</th", b"ink><tool_call>{"], opened) == (2, b"{")
    # without a reasoning span, the first opener counts wherever it is
    assert call_opened_at(mused) == (1, b"")

"""The grammar gate: where the free span of a job's output ends and its answer begins."""

from __future__ import annotations

import pytest

from power_backend_llamacpp.grammar_gate import GrammarGate
from power_core.engine import FreeSpan

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

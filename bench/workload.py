"""What the benchmarks ask for: prompts, lengths, and the order targets take turns in."""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

#: greedy SmolLM2-135M-Instruct runs this raw prompt to 256 tokens without an end token
DECODE_PROMPT = "Once upon a time"
DECODE_TOKENS = 256

#: short prompts, a different one per repetition so no server answers from a cached prefix
TTFT_PROMPTS = [
    "The capital of France is",
    "Water boils at",
    "My favourite colour is",
    "The quick brown fox",
    "In 1969, astronauts",
    "A good breakfast has",
    "The tallest mountain is",
    "Rain falls because",
    "Cats like to",
    "The sun rises in the",
    "Bread is made from",
    "The ocean is",
]
TTFT_TOKENS = 4

CONCURRENT_TOKENS = 128
_SUBJECTS = [
    "a lighthouse keeper",
    "a young dragon",
    "a lost robot",
    "two old friends",
    "a clever fox",
    "a sailor",
    "a baker in Paris",
    "a girl who could fly",
    "a tiny mouse",
    "a wizard's apprentice",
    "a space explorer",
    "a talking tree",
    "a brave knight",
    "a detective",
    "a musician",
    "a farmer and his horse",
]


def concurrent_prompts(count: int, rep: int = 0, series: int = 0) -> list[str]:
    """``count`` different story openings (at most 16), different again for each ``rep`` and
    each ``series``: our engine keeps every sequence's last prompt and llama-server its
    slots', so a request that repeats an earlier one (a later repetition, another mode or
    level of the same run, the warm-up) would skip its prefill. The number comes first, so
    two openings share no more than the word before it."""
    return [
        f"Story {series + 1}{rep:02d}{index:02d}. Here is a short story about {subject}.\n\n"
        "Once upon a time"
        for index, subject in enumerate(_SUBJECTS[:count])
    ]


#: the first letters of the short prompts, a different one for each of 52 requests in turn
_LEADS = string.ascii_uppercase + string.ascii_lowercase


def ttft_prompt(rep: int, target: int, targets: int) -> str:
    """The short prompt of repetition ``rep`` for the ``target``-th of ``targets``: the same
    words for every target, after a letter and a number. No request shares its first token
    with any of the 51 before it, so none decodes fewer tokens than another: llama-cpp-
    python's ``Llama`` reuses the prefix its last prompt shares (digits are single tokens
    here: "100." and "101." share two), and a server evicting a cached sequence keeps the
    prefix that sequence shares."""
    lead = _LEADS[(rep * targets + target) % len(_LEADS)]
    return f"{lead}{target + 1}{rep:02d}. {TTFT_PROMPTS[rep % len(TTFT_PROMPTS)]}"


def rotated(items: Sequence[T], rep: int) -> list[T]:
    """``items`` starting at position ``rep``: each target goes first in turn, so none is
    always measured right after the same neighbour."""
    if not items:
        return []
    shift = rep % len(items)
    return list(items[shift:]) + list(items[:shift])

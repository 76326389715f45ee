"""Fitting a long conversation into the context: the oldest turns go first.

Ollama trims a chat that no longer fits its context (its ``truncate``, on by default) so
that a long conversation goes on instead of failing. The rules here: system (and developer)
messages always stay, and so does the last message; the turns in between are dropped
oldest first, and the kept history starts at a user message (chat templates that insist
on alternating roles raise on a history that starts with an answer or a tool result). When
even the system messages and the last message do not fit, nothing is dropped and the engine
reports the prompt as too long.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from power_core.chat.messages import SYSTEM_ROLES
from power_core.types import ChatMessage

log = logging.getLogger(__name__)


def reply_room(context_length: int, max_tokens: int | None) -> int:
    """Tokens of the context left for the reply when history is trimmed: ``max_tokens``
    when the request sets it (at most half the context), else a quarter of the context."""
    if max_tokens is not None and max_tokens > 0:
        return min(max_tokens, context_length // 2)
    return context_length // 4


def fitted_prompt(
    messages: list[ChatMessage],
    render: Callable[[list[ChatMessage]], str],
    count_tokens: Callable[[str], int],
    budget: int,
) -> str:
    """``render``'s text of ``messages`` with the fewest oldest turns dropped that bring it
    to at most ``budget`` tokens; of them all when they fit or when nothing may go."""
    whole = render(messages)
    if _fits(whole, count_tokens, budget):
        return whole
    cuts = _cut_points(messages)
    # dropping more history never lengthens the prompt: the first cut that fits is found by
    # bisection, rendering a few candidates however long the conversation
    low, high, fitting = 0, len(cuts), whole
    while low < high:
        middle = (low + high) // 2
        text = render(_kept(messages, cuts[middle]))
        if _fits(text, count_tokens, budget):
            high, fitting = middle, text
        else:
            low = middle + 1
    if low == len(cuts):
        return whole
    dropped = len(messages) - len(_kept(messages, cuts[low]))
    log.info(
        "conversation trimmed to fit the context: %d of %d messages dropped", dropped, len(messages)
    )
    return fitting


def _fits(text: str, count_tokens: Callable[[str], int], budget: int) -> bool:
    # a token is at least one byte of text, plus a BOS the tokenizer may add: most chats
    # fit without being tokenized here
    return len(text.encode("utf-8")) + 1 <= budget or count_tokens(text) <= budget


def _cut_points(messages: list[ChatMessage]) -> list[int]:
    """Where the kept history may start, oldest first: at a user message after the first
    message that is not a system one, or at the last message."""
    last = len(messages) - 1
    first_turn = next(
        (i for i, m in enumerate(messages) if m.role not in SYSTEM_ROLES), len(messages)
    )
    cuts = [i for i in range(first_turn + 1, last) if messages[i].role == "user"]
    return [*cuts, last] if last > first_turn else cuts


def _kept(messages: list[ChatMessage], cut: int) -> list[ChatMessage]:
    """The system messages before ``cut`` and every message from ``cut`` on."""
    return [m for m in messages[:cut] if m.role in SYSTEM_ROLES] + messages[cut:]

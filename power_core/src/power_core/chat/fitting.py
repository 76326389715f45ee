"""Fitting a long conversation into the context: the oldest turns go first.

Ollama trims a chat that no longer fits its context (its ``truncate``, on by default) so
that a long conversation goes on instead of failing. The rules here: system (and developer)
messages always stay, and so does the last turn (from the last user message on: a tool
result or an answer the client began belongs to it); the turns before it are dropped
oldest first, and the kept history starts at a user message (chat templates that insist
on alternating roles raise on a history that starts with an answer or a tool result). The
prompt should leave room for the reply; when no cut does, the most trimmed one that fits
the context at all is used (the context then shifts as the reply grows); when not even
that fits, nothing is dropped and the engine reports the prompt as too long.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from power_core.chat.messages import SYSTEM_ROLES
from power_core.chat.template import TemplateError
from power_core.types import ChatMessage

log = logging.getLogger(__name__)


def reply_room(context_length: int, max_tokens: int | None) -> int:
    """Tokens of the context left for the reply when history is trimmed: ``max_tokens``
    when the request sets it (at most half the context), else a quarter of the context."""
    if max_tokens is not None and max_tokens > 0:
        return min(max_tokens, context_length // 2)
    return context_length // 4


def kept_count(num_keep: int, tokens: list[int], bos: int | None) -> int:
    """How many first ``tokens`` a shift or a cut keeps for ``num_keep``, as Ollama's llama.cpp
    runner counts it: a negative count is the whole prompt; a BOS that starts the prompt
    is kept on top of the count."""
    if num_keep < 0:
        return len(tokens)
    return num_keep + 1 if bos is not None and tokens[:1] == [bos] else num_keep


def kept_ends(tokens: list[int], keep: int, budget: int) -> list[int]:
    """``tokens`` cut to ``budget``: the first ``keep`` (see :func:`kept_count`; at most half
    the budget) and as many of the last as fit."""
    head = min(keep, budget // 2)
    return tokens[:head] + tokens[len(tokens) - (budget - head) :]


def fits_by_size(text: str, budget: int) -> bool:
    """Whether ``text`` surely tokenizes to at most ``budget`` tokens without tokenizing it:
    a token holds at least one byte of text, and a tokenizer adds at most BOS, EOS and a
    leading space of its own."""
    return len(text.encode("utf-8")) + 3 <= budget


def surely_too_long(text: str, budget: int, longest_token_bytes: int | None) -> bool:
    """Whether ``text`` surely tokenizes to more than ``budget`` tokens without tokenizing
    it: no token stands for more than ``longest_token_bytes`` bytes of text (the engine's,
    ``None`` when it does not say)."""
    if not longest_token_bytes:
        return False
    return len(text.encode("utf-8")) > budget * longest_token_bytes


def fitted_prompt(
    messages: list[ChatMessage],
    render: Callable[[list[ChatMessage]], str],
    count_tokens: Callable[[str], int],
    budget: int,
    limit: int,
    *,
    by_size: bool = True,
    longest_token_bytes: int | None = None,
) -> str:
    """``render``'s text of ``messages`` with the fewest oldest turns dropped that bring it
    to at most ``budget`` tokens; else the most trimmed if that is under ``limit`` (the
    context); else of them all. Without ``by_size`` every candidate is counted (a short text
    may show images that take many tokens). With ``longest_token_bytes`` a candidate too
    long by its size alone is not counted (:func:`surely_too_long`): a message of
    megabytes is tokenized once at most, not once a candidate."""

    def fits(text: str, most: int) -> bool:
        # most chats fit without being tokenized here, and what cannot fit is not either
        if by_size and fits_by_size(text, most):
            return True
        return not surely_too_long(text, most, longest_token_bytes) and count_tokens(text) <= most

    whole = render(messages)
    if fits(whole, budget):
        return whole
    cuts = _cut_points(messages)
    # dropping more history never lengthens the prompt: the first cut that fits is found by
    # bisection, rendering a few candidates however long the conversation
    low, high, fitting = 0, len(cuts), None
    while low < high:
        middle = (low + high) // 2
        text = _rendered(render, _kept(messages, cuts[middle]))
        if text is not None and fits(text, budget):
            high, fitting = middle, text
        else:
            low = middle + 1
    if fitting is None and cuts:
        low = len(cuts) - 1
        text = _rendered(render, _kept(messages, cuts[low]))
        if text is not None and fits(text, limit):
            fitting = text
    if fitting is None:
        return whole
    dropped = len(messages) - len(_kept(messages, cuts[low]))
    log.info(
        "conversation trimmed to fit the context: %d of %d messages dropped", dropped, len(messages)
    )
    return fitting


def _rendered(
    render: Callable[[list[ChatMessage]], str], messages: list[ChatMessage]
) -> str | None:
    """The text of ``messages``, ``None`` when the template refuses the trimmed history."""
    try:
        return render(messages)
    except TemplateError:
        return None


def _cut_points(messages: list[ChatMessage]) -> list[int]:
    """Where the kept history may start, oldest first: at a user message after the first
    message that is not a system one, up to the last user message."""
    first_turn = next(
        (i for i, m in enumerate(messages) if m.role not in SYSTEM_ROLES), len(messages)
    )
    return [i for i in range(first_turn + 1, len(messages)) if messages[i].role == "user"]


def _kept(messages: list[ChatMessage], cut: int) -> list[ChatMessage]:
    """The system messages before ``cut`` and every message from ``cut`` on."""
    return [m for m in messages[:cut] if m.role in SYSTEM_ROLES] + messages[cut:]

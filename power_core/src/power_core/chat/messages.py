"""Conversation edits the API surfaces share: a model's default system prompt and history."""

from __future__ import annotations

from power_core.types import ChatMessage

#: roles whose messages set the scene rather than take a turn
SYSTEM_ROLES = ("system", "developer")


def merge_system(
    messages: list[ChatMessage], system: str | None, *, replace: bool = False
) -> list[ChatMessage]:
    """Return ``messages`` with the system prompt ``system`` applied.

    By default ``system`` (a model's Modelfile ``SYSTEM``) goes first unless the conversation
    opens with a system (or developer) message of its own, as Ollama decides: a system
    message later on (context a client adds between turns) keeps it. With ``replace`` (a
    ``system`` the request itself set), it takes the place of the conversation's leading
    system messages. ``None`` or an empty string changes nothing. The input is not modified.
    """
    if not system:
        return list(messages)
    lead = 0
    while lead < len(messages) and messages[lead].role in SYSTEM_ROLES:
        lead += 1
    if replace:
        return [ChatMessage(role="system", content=system), *messages[lead:]]
    if lead:
        return list(messages)
    return [ChatMessage(role="system", content=system), *messages]


def prepend_history(messages: list[ChatMessage], history: list[ChatMessage]) -> list[ChatMessage]:
    """Put a model's Modelfile ``MESSAGE`` history before the conversation.

    The history goes after the conversation's leading system messages, so a system prompt stays
    first. The input lists are not modified.
    """
    if not history:
        return list(messages)
    lead = 0
    while lead < len(messages) and messages[lead].role in SYSTEM_ROLES:
        lead += 1
    return [*messages[:lead], *history, *messages[lead:]]

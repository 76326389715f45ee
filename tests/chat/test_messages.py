"""Modelfile SYSTEM and MESSAGE history are merged into conversations the same way everywhere."""

from __future__ import annotations

from power_core.chat.messages import merge_system, prepend_history
from power_core.types import ChatMessage

USER = ChatMessage("user", "hi")
ASSISTANT = ChatMessage("assistant", "hello")


def roles_and_contents(messages: list[ChatMessage]) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in messages]


def test_modelfile_system_is_used_when_the_conversation_has_none() -> None:
    merged = merge_system([USER], "You are terse.")
    assert roles_and_contents(merged) == [("system", "You are terse."), ("user", "hi")]


def test_conversation_system_or_developer_message_wins_over_the_modelfile() -> None:
    for role in ("system", "developer"):
        conversation = [ChatMessage(role, "Mine."), USER]
        assert merge_system(conversation, "Modelfile.") == conversation


def test_a_system_message_later_on_keeps_the_modelfile_system_first_as_ollama_does() -> None:
    later = ChatMessage("system", "Context for the next turn.")
    merged = merge_system([USER, ASSISTANT, later, USER], "Modelfile.")
    assert roles_and_contents(merged) == [
        ("system", "Modelfile."),
        ("user", "hi"),
        ("assistant", "hello"),
        ("system", "Context for the next turn."),
        ("user", "hi"),
    ]


def test_request_system_replaces_the_leading_system_messages() -> None:
    conversation = [ChatMessage("system", "Old."), ChatMessage("developer", "Older."), USER]
    merged = merge_system(conversation, "New.", replace=True)
    assert roles_and_contents(merged) == [("system", "New."), ("user", "hi")]
    assert roles_and_contents(merge_system([USER], "New.", replace=True)) == [
        ("system", "New."),
        ("user", "hi"),
    ]


def test_no_system_changes_nothing_and_inputs_are_not_modified() -> None:
    conversation = [USER]
    assert merge_system(conversation, None) == [USER]
    assert merge_system(conversation, "") == [USER]
    merge_system(conversation, "x")
    assert conversation == [USER]


def test_history_goes_after_the_system_prompt_and_before_the_conversation() -> None:
    history = [ChatMessage("user", "earlier"), ChatMessage("assistant", "reply")]
    conversation = [ChatMessage("system", "S."), USER]
    assert roles_and_contents(prepend_history(conversation, history)) == [
        ("system", "S."),
        ("user", "earlier"),
        ("assistant", "reply"),
        ("user", "hi"),
    ]
    assert prepend_history([USER, ASSISTANT], history) == [*history, USER, ASSISTANT]
    assert prepend_history([USER], []) == [USER]
    assert conversation == [ChatMessage("system", "S."), USER]


def test_history_then_modelfile_system_puts_the_system_prompt_first() -> None:
    history = [ChatMessage("user", "earlier")]
    merged = merge_system(prepend_history([USER], history), "S.")
    assert roles_and_contents(merged) == [("system", "S."), ("user", "earlier"), ("user", "hi")]

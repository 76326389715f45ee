"""A conversation too long for the context loses its oldest turns, and only those."""

from __future__ import annotations

import random

import pytest

from power_core.chat.fitting import fitted_prompt, kept_count, kept_ends, reply_room
from power_core.chat.template import CHATML_TEMPLATE, ChatTemplate, TemplateError
from power_core.types import ChatMessage

CHATML = ChatTemplate(CHATML_TEMPLATE)


def render(messages: list[ChatMessage]) -> str:
    return CHATML.render(messages, add_generation_prompt=True)


def words(text: str) -> int:
    """A stand-in tokenizer: one token per word (never more tokens than bytes, as a real
    tokenizer)."""
    return len(text.split())


def turn(i: int) -> list[ChatMessage]:
    return [
        ChatMessage("user", f"question {i} " + "word " * 20),
        ChatMessage("assistant", f"answer {i} " + "word " * 20),
    ]


def conversation(turns: int) -> list[ChatMessage]:
    messages = [ChatMessage("system", "You are terse.")]
    for i in range(turns):
        messages += turn(i)
    return [*messages, ChatMessage("user", "the last question")]


def kept_contents(text: str, messages: list[ChatMessage]) -> list[str]:
    return [m.content for m in messages if m.content in text]


def test_a_conversation_that_fits_is_rendered_whole() -> None:
    messages = conversation(3)
    assert fitted_prompt(messages, render, words, budget=10_000, limit=10_000) == render(messages)


def test_the_oldest_turns_go_first_and_system_and_last_stay() -> None:
    messages = conversation(10)
    budget = words(render(messages)) // 2
    text = fitted_prompt(messages, render, words, budget, limit=budget)
    kept = kept_contents(text, messages)
    assert words(text) <= budget
    assert kept[0] == "You are terse." and kept[-1] == "the last question"
    turns = kept[1:-1]
    # a suffix of whole turns, starting with a question, and no shorter cut would fit
    assert turns and turns[0].startswith("question")
    assert turns == [m.content for m in messages[-1 - len(turns) : -1]]
    one_more = [messages[0], *messages[-3 - len(turns) :]]
    assert words(render(one_more)) > budget


def test_a_system_message_in_the_middle_stays_too() -> None:
    messages = conversation(6)
    messages.insert(5, ChatMessage("system", "Answer in French from now on."))
    budget = words(render(messages)) // 3
    text = fitted_prompt(messages, render, words, budget, limit=budget)
    assert "Answer in French from now on." in text and "question 0 " not in text


def test_the_kept_history_never_starts_with_an_answer_or_a_tool_result() -> None:
    messages = [
        ChatMessage("system", "s"),
        ChatMessage("user", "first " + "word " * 30),
        ChatMessage("assistant", "reply " + "word " * 30),
        ChatMessage("user", "call the tool " + "word " * 30),
        ChatMessage("assistant", "calling " + "word " * 30),
        ChatMessage("tool", "result " + "word " * 30),
        ChatMessage("assistant", "it said " + "word " * 30),
        ChatMessage("user", "and now?"),
    ]
    # room for the tool result and what followed, but not for the question before them
    budget = words(render([messages[0], *messages[5:]])) + 1
    text = fitted_prompt(messages, render, words, budget, limit=budget)
    assert kept_contents(text, messages) == ["s", "and now?"]


def test_a_last_turn_with_a_tool_result_or_a_begun_answer_stays_whole() -> None:
    for last in (ChatMessage("tool", "42"), ChatMessage("assistant", "Once upon")):
        messages = [
            *conversation(6)[:-1],
            ChatMessage("user", "the last question"),
            ChatMessage("assistant", "calling the tool"),
            last,
        ]
        budget = words(render([messages[0], *messages[-3:]])) + 2
        text = fitted_prompt(messages, render, words, budget, limit=budget)
        assert kept_contents(text, messages)[-3:] == [
            "the last question",
            "calling the tool",
            last.content,
        ]
        assert "question 5 " not in text


def test_a_cut_the_template_refuses_is_passed_over() -> None:
    # a template with a rule about the first message, as some check that roles alternate
    strict = ChatTemplate(
        "{% if messages[0].content.startswith('three') %}"
        "{{ raise_exception('not like this') }}{% endif %}"
        "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    )

    def render_strict(messages: list[ChatMessage]) -> str:
        return strict.render(messages, add_generation_prompt=False)

    messages = [
        ChatMessage("user", "one " + "word " * 30),
        ChatMessage("assistant", "two " + "word " * 30),
        ChatMessage("user", "three"),
        ChatMessage("assistant", "four"),
        ChatMessage("user", "five"),
    ]
    with pytest.raises(TemplateError):
        render_strict(messages[2:])
    budget = words(render(messages[2:])) + 1
    text = fitted_prompt(messages, render_strict, words, budget, limit=budget)
    assert text == render_strict(messages[4:])


def test_without_room_for_the_reply_the_most_trimmed_prompt_that_fits_is_used() -> None:
    messages = conversation(8)
    last_turn = render([messages[0], messages[-1]])
    # the last turn alone does not leave the reply its room, but fits the context
    text = fitted_prompt(messages, render, words, budget=5, limit=words(last_turn))
    assert text == last_turn
    assert fitted_prompt(messages, render, words, budget=5, limit=5) == render(messages)


def test_nothing_is_dropped_when_even_the_last_message_does_not_fit() -> None:
    messages = [*conversation(2)[:-1], ChatMessage("user", "long " * 500)]
    assert fitted_prompt(messages, render, words, budget=100, limit=200) == render(messages)


def test_the_cut_is_the_smallest_that_fits_for_any_length() -> None:
    rng = random.Random(7)
    for _ in range(200):
        messages = [ChatMessage("system", "sys")]
        for i in range(rng.randint(1, 12)):
            messages.append(ChatMessage("user", f"q{i} " + "w " * rng.randint(0, 40)))
            messages.append(ChatMessage("assistant", f"a{i} " + "w " * rng.randint(0, 40)))
        messages.append(ChatMessage("user", "last " + "w " * rng.randint(0, 20)))
        budget = rng.randint(10, words(render(messages)) + 10)
        starts = [i for i in range(2, len(messages) - 1) if messages[i].role == "user"]
        expected = render(messages)
        for start in [0, *starts, len(messages) - 1]:
            candidate = render([messages[0], *messages[max(start, 1) :]])
            if words(candidate) <= budget:
                expected = candidate
                break
        assert fitted_prompt(messages, render, words, budget, limit=budget) == expected


def test_the_reply_keeps_its_room() -> None:
    assert reply_room(4096, None) == 1024
    assert reply_room(4096, -1) == 1024
    assert reply_room(4096, 100) == 100
    assert reply_room(4096, 100_000) == 2048


def test_a_prompt_too_long_keeps_its_start_and_its_end() -> None:
    tokens = list(range(100))
    assert kept_ends(tokens, 4, 10) == [0, 1, 2, 3, 94, 95, 96, 97, 98, 99]
    assert kept_ends(tokens, 50, 10) == [0, 1, 2, 3, 4, 95, 96, 97, 98, 99]
    assert kept_ends(tokens, kept_count(-1, tokens, bos=None), 10) == [
        0,
        1,
        2,
        3,
        4,
        95,
        96,
        97,
        98,
        99,
    ]
    assert kept_ends(tokens, 0, 3) == [97, 98, 99]


def test_num_keep_counts_as_ollamas_runner_does() -> None:
    prompt = [1, 50, 51, 52, 53]  # 1 is BOS
    assert kept_count(4, prompt, bos=1) == 5  # the BOS on top of the four
    assert kept_count(4, prompt[1:], bos=1) == 4  # no BOS at the start
    assert kept_count(4, prompt, bos=None) == 4  # a model without one
    assert kept_count(0, prompt, bos=1) == 1
    assert kept_count(-1, prompt, bos=1) == 5  # the whole prompt


def test_candidates_too_long_by_their_size_are_not_tokenized() -> None:
    """A last message of megabytes cannot fit however much history goes: with the longest
    token's length known, no candidate holding it is counted (each count of such a text
    took seconds of llama.cpp, once a candidate); the answer is the same."""
    messages = [*conversation(200)[:-1], ChatMessage("user", "word " * 200_000)]
    counted: list[int] = []

    def counting(text: str) -> int:
        counted.append(len(text))
        return words(text)

    plain = fitted_prompt(messages, render, counting, budget=500, limit=1000)
    assert len(counted) > 5 and max(counted) > 1_000_000  # bisection counted each one
    counted.clear()
    # "word " is one token of 5 bytes: at most 5 bytes a token here
    quick = fitted_prompt(messages, render, counting, budget=500, limit=1000, longest_token_bytes=5)
    assert quick == plain  # nothing fits: the whole conversation, for the engine to cut
    assert counted == []
    # a bound that does not rule the candidates out leaves them counted as before
    fitted_prompt(messages, render, counting, budget=500, limit=1000, longest_token_bytes=10**6)
    assert len(counted) > 5

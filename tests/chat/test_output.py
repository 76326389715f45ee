"""OutputParser turns streamed text into text, reasoning and tool-call events, however split."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from power_core.chat.output import OutputParser, opens_thinking
from power_core.types import (
    GenerationEvent,
    TextDelta,
    ThinkingDelta,
    TokenLogprob,
    ToolCallEvent,
)

CONFIGS = [
    {"parse_tools": tools, "think": think, "in_thinking": in_thinking}
    for tools in (False, True)
    for think in (None, True, False)
    for in_thinking in (False, True)
]


@dataclass
class Result:
    text: str = ""
    thinking: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def summarise(events: list[GenerationEvent]) -> Result:
    result = Result()
    for event in events:
        if isinstance(event, TextDelta):
            result.text += event.text
        elif isinstance(event, ThinkingDelta):
            result.thinking += event.text
        elif isinstance(event, ToolCallEvent):
            assert event.index == len(result.calls)
            result.calls.append((event.call.name, event.call.arguments))
    return result


def parse(chunks: list[str], **config: Any) -> Result:
    parser = OutputParser(**config)
    events: list[GenerationEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    events += parser.finish()
    return summarise(events)


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


# Pieces that stress every boundary the parser cares about.
FRAGMENTS = [
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "[TOOL_CALLS]",
    "[ARGS]",
    "```",
    "json",
    '{"name": "f", "arguments": {"a": 1}}',
    '{"name": "g", "parameters": {}}',
    '[{"name": "h", "arguments": "{\\"b\\": [2]}"}]',
    "{",
    "}",
    "[",
    "]",
    '"',
    "name",
    ": ",
    ", ",
    " ",
    "\n",
    "<",
    "</",
    "think",
    ">",
    "Hello",
    "x",
    "é",
]
texts = st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join)
cut_lists = st.lists(st.integers(min_value=0, max_value=400), max_size=8)


@settings(max_examples=300, deadline=None)
@given(text=texts, cuts=cut_lists, config=st.sampled_from(CONFIGS))
def test_any_chunking_gives_the_same_result(
    text: str, cuts: list[int], config: dict[str, Any]
) -> None:
    whole = parse([text], **config)
    assert parse(split(text, cuts), **config) == whole
    assert parse(list(text), **config) == whole


@settings(max_examples=200, deadline=None)
@given(text=texts, cuts=cut_lists)
def test_text_is_never_lost_when_no_call_is_found(text: str, cuts: list[int]) -> None:
    result = parse(split(text, cuts), parse_tools=True, think=None)
    if not result.calls:
        assert result.text == text
    assert parse(split(text, cuts), parse_tools=False, think=None) == Result(text=text)


no_tags = st.text(alphabet=" \n<>/thinkéx", max_size=30).filter(lambda s: "</think>" not in s)


@settings(max_examples=300, deadline=None)
@given(lead=st.sampled_from(["", " ", "\n\n"]), reasoning=no_tags, answer=no_tags, cuts=cut_lists)
def test_reasoning_is_split_at_every_boundary(
    lead: str, reasoning: str, answer: str, cuts: list[int]
) -> None:
    output = f"{lead}<think>{reasoning}</think>{answer}"
    for chunks in (split(output, cuts), list(output)):
        assert parse(chunks, parse_tools=False, think=True) == Result(
            text=answer.lstrip(), thinking=reasoning.strip()
        )
        assert parse(chunks, parse_tools=False, think=False) == Result(text=answer.lstrip())
        assert parse(chunks, parse_tools=False, think=None) == Result(text=output)
    # the prompt opened the block already
    opened = f"{reasoning}</think>{answer}"
    assert parse(split(opened, cuts), parse_tools=True, think=True, in_thinking=True) == Result(
        text=answer.lstrip(), thinking=reasoning.strip()
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
arguments = st.dictionaries(st.text(max_size=6), json_values, max_size=4)


@settings(max_examples=200, deadline=None)
@given(args=arguments, cuts=cut_lists, style=st.sampled_from(["block", "bare", "fence", "list"]))
def test_tool_call_arguments_survive_any_chunking(
    args: dict[str, Any], cuts: list[int], style: str
) -> None:
    call = json.dumps({"name": "do_it", "arguments": args})
    output = {
        "block": f"<tool_call>\n{call}\n</tool_call>",
        "bare": call,
        "fence": f"```json\n{call}\n```",
        "list": f"[{call}, {call}]",
    }[style]
    expected = [("do_it", args)] * (2 if style == "list" else 1)
    assert parse(split(output, cuts), parse_tools=True, think=None) == Result(calls=expected)


@pytest.mark.parametrize("config", CONFIGS[:6] + CONFIGS[6::2])
def test_ordinary_text_is_streamed_at_once(config: dict[str, Any]) -> None:
    if config["in_thinking"] and config["think"] is not None:
        return  # that text is reasoning, covered below
    parser = OutputParser(**config)
    assert parser.feed("Hello") == [TextDelta(0, "Hello")]
    assert parser.feed(" world") == [TextDelta(0, " world")]


def test_reasoning_is_streamed_at_once_too() -> None:
    parser = OutputParser(parse_tools=True, think=True)
    assert parser.feed("<think>") == []
    assert parser.feed("Let me") == [ThinkingDelta(0, "Let me")]
    assert parser.feed(" see</thi") == [ThinkingDelta(0, " see")]
    assert parser.feed("nk>\n\nYes") == [TextDelta(0, "Yes")]
    assert parser.finish() == []


@pytest.mark.parametrize(
    ("output", "calls", "text"),
    [
        (
            '<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>\n'
            '<tool_call>\n{"name": "g", "arguments": {}}\n</tool_call>',
            [("f", {"x": 1}), ("g", {})],
            "",
        ),
        ('I will check.\n<tool_call>{"name": "f"}</tool_call>', [("f", {})], "I will check."),
        ('<tool_call>{"name": "f", "arguments": "{\\"x\\": 2}"}', [("f", {"x": 2})], ""),
        (
            '[TOOL_CALLS] [{"name": "f", "arguments": {"a": 1}}, {"name": "g", "arguments": {}}]',
            [("f", {"a": 1}), ("g", {})],
            "",
        ),
        ('[TOOL_CALLS]f[ARGS]{"a": 1}[TOOL_CALLS]g[ARGS]{}', [("f", {"a": 1}), ("g", {})], ""),
        ('{"name": "f", "arguments": {"a": 1}}', [("f", {"a": 1})], ""),
        ('  {"name": "f", "parameters": {"a": 1}}\n', [("f", {"a": 1})], ""),
        ('{"type": "function", "function": {"name": "f", "arguments": {}}}', [("f", {})], ""),
        (
            '[{"name": "f", "arguments": {}}, {"name": "g", "arguments": {}}]',
            [("f", {}), ("g", {})],
            "",
        ),
        ('```json\n{"name": "f", "arguments": {"a": "b"}}\n```', [("f", {"a": "b"})], ""),
        ('<think>hm</think>{"name": "f", "arguments": {}}', [("f", {})], ""),
    ],
)
def test_tool_call_formats(output: str, calls: list[tuple[str, Any]], text: str) -> None:
    assert parse([output], parse_tools=True, think=True) == Result(
        text=text, calls=calls, thinking="hm" if "<think>" in output else ""
    )


@pytest.mark.parametrize(
    "output",
    [
        "<tool_call>{not json}</tool_call>",
        '<tool_call>{"arguments": {}}</tool_call> no name',
        '<tool_call>{"name": "f", "arguments": "not json"}</tool_call>',
        '{"name": "f", "arguments": {"a": 1}',
        '{"name": "Bob", "age": 42}',
        '{"answer": 42}',
        "[1, 2, 3]",
        "[TOOL_CALLS] sorry, no",
        '[TOOL_CALLS] [{"name": "f", "arguments": 3}]',
        "```python\nprint(1)\n```",
        '```json\n{"name": "f", "arguments": {}}\nnot a fence```',
    ],
)
def test_invalid_calls_are_kept_as_text(output: str) -> None:
    assert parse([output], parse_tools=True, think=None) == Result(text=output)
    assert parse(list(output), parse_tools=True, think=None) == Result(text=output)


def test_possible_call_is_held_until_decided() -> None:
    parser = OutputParser(parse_tools=True, think=None)
    assert parser.feed('{"na') == []
    assert parser.feed('me": "f", "arguments": {"q": 1}}') == []
    assert parser.tool_calls[0].name == "f"
    events = parser.finish()
    assert len(events) == 1 and isinstance(events[0], ToolCallEvent)
    # a key that no call has decides at once
    parser = OutputParser(parse_tools=True, think=None)
    assert parser.feed('{"ans') == [TextDelta(0, '{"ans')]


def test_tool_call_events_carry_choice_index_and_fresh_ids() -> None:
    parser = OutputParser(choice=2, parse_tools=True, think=None)
    output = '<tool_call>{"name": "f", "arguments": {}}</tool_call>' * 3
    events = parser.feed(output) + parser.finish()
    assert [type(e) for e in events] == [ToolCallEvent] * 3
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert [(e.choice, e.index) for e in calls] == [(2, 0), (2, 1), (2, 2)]
    ids = {e.call.id for e in calls}
    assert len(ids) == 3 and all(i.startswith("call_") and len(i) > 12 for i in ids)
    assert [c.id for c in parser.tool_calls] == [e.call.id for e in calls]


@pytest.mark.parametrize(
    "output",
    [
        '<tool_call>{"name": "delete_everything", "arguments": {}}</tool_call>',
        '[TOOL_CALLS] [{"name": "delete_everything", "arguments": {}}]',
        '[TOOL_CALLS]delete_everything[ARGS]{"a": 1}',
        '{"name": "delete_everything", "arguments": {}}',
        '[{"name": "f", "arguments": {}}, {"name": "delete_everything", "arguments": {}}]',
    ],
)
def test_a_call_of_a_tool_never_declared_is_text_as_ollama_reads_it(output: str) -> None:
    declared = {"f", "g"}
    assert parse([output], parse_tools=True, think=None, tool_names=declared) == Result(text=output)
    # without the names, each is a call
    assert parse([output], parse_tools=True, think=None).calls


def test_declared_tools_are_still_called() -> None:
    output = '<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>'
    assert parse([output], parse_tools=True, think=None, tool_names={"f"}) == Result(
        calls=[("f", {"a": 1})]
    )


def test_a_single_call_is_reported_when_calls_may_not_run_in_parallel() -> None:
    output = '<tool_call>{"name": "f", "arguments": {}}</tool_call>' + (
        '<tool_call>{"name": "g", "arguments": {"b": 2}}</tool_call>'
    )
    assert parse([output], parse_tools=True, think=None, single_call=True) == Result(
        calls=[("f", {})]
    )
    parser = OutputParser(parse_tools=True, think=None, single_call=True)
    parser.feed(output)
    assert [call.name for call in parser.tool_calls] == ["f"]


def test_tool_markers_are_plain_text_when_tools_are_off() -> None:
    output = '<tool_call>{"name": "f", "arguments": {}}</tool_call>'
    assert parse([output], parse_tools=False, think=None) == Result(text=output)


def test_logprobs_travel_with_visible_text() -> None:
    def lp(token: str) -> TokenLogprob:
        return TokenLogprob(token=token, logprob=-0.5, bytes=list(token.encode()))

    parser = OutputParser(parse_tools=False, think=True)
    assert parser.feed("<think>", [lp("<think>")]) == []
    assert parser.feed("hm", [lp("hm")]) == [ThinkingDelta(0, "hm")]
    assert parser.feed("</think>", [lp("</think>")]) == []
    assert parser.feed("Hi", [lp("Hi")]) == [TextDelta(0, "Hi", [lp("Hi")])]

    parser = OutputParser(parse_tools=True, think=None)
    assert parser.feed("a <", [lp("a <")]) == [TextDelta(0, "a", [lp("a <")])]
    assert parser.feed("b", [lp("b")]) == [TextDelta(0, " <b", [lp("b")])]


def test_finish_is_final() -> None:
    parser = OutputParser(parse_tools=True, think=None)
    parser.feed("x")
    assert parser.finish() == []
    assert parser.finish() == []
    with pytest.raises(RuntimeError):
        parser.feed("y")


def test_opens_thinking_detects_a_prompt_ending_in_think() -> None:
    assert opens_thinking("<|im_start|>assistant\n<think>\n")
    assert not opens_thinking("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not opens_thinking("<|im_start|>assistant\n")


def test_a_forced_list_of_calls_cut_short_keeps_the_calls_it_completed() -> None:
    # a grammar made the output calls, and the token limit cut the second one
    cut = '[ { "name": "f", "arguments": {"a": 1}},{ "name": "g", "argu'
    for chunks in ([cut], list(cut)):
        forced = parse(chunks, parse_tools=True, think=None, forced_calls=True)
        assert forced == Result(calls=[("f", {"a": 1})])
        # unforced, a model that wrote such JSON on its own meant it as text
        assert parse(chunks, parse_tools=True, think=None) == Result(text=cut)
    # cut before any call was whole: the grammar's JSON is no answer text either
    for nothing_whole in ('[{"name": "f", "arguments": {"a', '{ "name', "[ "):
        forced = parse([nothing_whole], parse_tools=True, think=None, forced_calls=True)
        assert forced == Result()

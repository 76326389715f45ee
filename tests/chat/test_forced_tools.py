"""The forced tool-call schema, and that of calls in blocks, admit exactly the calls
OutputParser reads back."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from power_core.chat.output import OutputParser
from power_core.chat.template import CHATML_TEMPLATE
from power_core.chat.tools import answer_or_call_schema, call_blocks, forced_tool_call_schema
from power_core.engine import FreeSpan
from power_core.errors import InvalidRequest
from power_core.types import ToolCallEvent, ToolSpec

WEATHER = ToolSpec(
    name="get_weather",
    description="Weather in a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"$ref": "#/$defs/Unit"}},
        "required": ["city"],
        "$defs": {"Unit": {"enum": ["C", "F"]}},
    },
)
TREE = ToolSpec(
    name="plant",
    parameters={
        "type": "object",
        "properties": {"children": {"type": "array", "items": {"$ref": "#"}}},
    },
)
CLOCK = ToolSpec(name="now")  # the default parameters: an empty object

PARIS = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}
SAPLING = {"name": "plant", "arguments": {"children": [{"children": []}]}}
TICK = {"name": "now", "arguments": {}}


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def calls_parsed_from(instance: Any) -> list[tuple[str, dict[str, Any]]]:
    parser = OutputParser(parse_tools=True, think=None)
    events = parser.feed(json.dumps(instance)) + parser.finish()
    assert all(isinstance(event, ToolCallEvent) for event in events)
    return [(e.call.name, e.call.arguments) for e in events if isinstance(e, ToolCallEvent)]


@pytest.mark.parametrize("choice", ["auto", "none"])
def test_no_constraint_for_auto_and_none(choice: str) -> None:
    assert forced_tool_call_schema([WEATHER], choice, parallel=True) is None


def test_required_admits_a_call_of_any_tool_and_parses_back() -> None:
    schema = forced_tool_call_schema([WEATHER, TREE, CLOCK], "required", parallel=False)
    assert schema is not None
    check = validator(schema)
    for call in (PARIS, SAPLING, TICK):
        assert check.is_valid(call)
        assert calls_parsed_from(call) == [(call["name"], call["arguments"])]
    for wrong in (
        {"name": "missing", "arguments": {}},
        {"name": "get_weather", "arguments": {"unit": "C"}},
        {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "K"}},
        {"name": "now"},
        {"name": "now", "arguments": {}, "extra": 1},
        [TICK],
    ):
        assert not check.is_valid(wrong)


def test_parallel_admits_a_list_of_calls_and_parses_back() -> None:
    schema = forced_tool_call_schema([WEATHER, TREE, CLOCK], "required", parallel=True)
    assert schema is not None
    check = validator(schema)
    calls = [PARIS, SAPLING, TICK]
    assert check.is_valid(calls)
    assert calls_parsed_from(calls) == [(c["name"], c["arguments"]) for c in calls]
    assert not check.is_valid([])
    assert not check.is_valid(PARIS)


def test_named_function_admits_only_that_function() -> None:
    schema = forced_tool_call_schema([WEATHER, TREE], "plant", parallel=False)
    assert schema is not None
    check = validator(schema)
    assert check.is_valid(SAPLING)
    assert not check.is_valid(PARIS)
    assert calls_parsed_from(SAPLING) == [("plant", SAPLING["arguments"])]
    # the tool's own recursive reference still points at its arguments
    assert not check.is_valid({"name": "plant", "arguments": {"children": [{"children": 3}]}})


def test_a_named_function_is_called_once_even_where_calls_may_be_parallel() -> None:
    schema = forced_tool_call_schema([WEATHER, TREE], "plant", parallel=True)
    assert schema is not None
    check = validator(schema)
    assert check.is_valid(SAPLING)
    assert not check.is_valid([SAPLING])
    assert not check.is_valid([SAPLING, SAPLING])


def test_unknown_function_is_an_invalid_tool_choice() -> None:
    with pytest.raises(InvalidRequest, match="'lookup'") as caught:
        forced_tool_call_schema([WEATHER], "lookup", parallel=False)
    assert caught.value.param == "tool_choice"
    assert caught.value.http_status == 400


def test_required_without_tools_is_an_invalid_tool_choice() -> None:
    with pytest.raises(InvalidRequest) as caught:
        forced_tool_call_schema([], "required", parallel=False)
    assert caught.value.param == "tool_choice"


def test_parameters_that_are_not_an_object_schema_are_refused() -> None:
    bad = ToolSpec(name="f", parameters={"type": "string"})
    with pytest.raises(InvalidRequest) as caught:
        forced_tool_call_schema([bad], "required", parallel=False)
    assert caught.value.param == "tools"


def test_tool_definitions_do_not_clash() -> None:
    other = ToolSpec(
        name="convert",
        parameters={
            "type": "object",
            "properties": {"to": {"$ref": "#/$defs/Unit"}},
            "$defs": {"Unit": {"enum": ["m", "ft"]}},
        },
    )
    schema = forced_tool_call_schema([WEATHER, other], "required", parallel=False)
    assert schema is not None
    check = validator(schema)
    assert check.is_valid({"name": "convert", "arguments": {"to": "ft"}})
    assert not check.is_valid({"name": "convert", "arguments": {"to": "C"}})
    assert check.is_valid(PARIS)
    # the caller's tool is left as it was
    assert "$defs" in WEATHER.parameters


#: an answer format with definitions of its own and a reference to itself
OUTLINE = {
    "type": "object",
    "properties": {
        "title": {"$ref": "#/$defs/Title"},
        "sections": {"type": "array", "items": {"$ref": "#"}},
    },
    "required": ["title"],
    "additionalProperties": False,
    "$defs": {"Title": {"type": "string", "maxLength": 10}},
}


@pytest.mark.parametrize("parallel", [False, True])
def test_tools_with_a_format_admit_the_answer_or_calls(parallel: bool) -> None:
    schema = answer_or_call_schema(OUTLINE, [WEATHER, TREE], parallel)
    check = validator(schema)
    assert check.is_valid({"title": "Top", "sections": [{"title": "Sub"}]})
    assert not check.is_valid({"title": "far too long a title"})
    assert not check.is_valid({"title": "Top", "extra": 1})
    assert check.is_valid(PARIS) and check.is_valid(SAPLING)
    assert not check.is_valid({"name": "get_weather", "arguments": {"city": "Paris", "unit": "K"}})
    assert check.is_valid([PARIS, SAPLING]) is parallel
    assert calls_parsed_from(PARIS) == [("get_weather", PARIS["arguments"])]
    # a json_object format: any object, or the calls
    loose = validator(answer_or_call_schema(None, [WEATHER], parallel))
    assert loose.is_valid({"anything": [1]}) and loose.is_valid(PARIS)
    assert not loose.is_valid([1])
    assert "$defs" in OUTLINE  # the caller's format is left as it was


def test_a_definition_named_root_keeps_its_meaning_beside_a_self_reference() -> None:
    answer = {
        "type": "object",
        "properties": {"name": {"$ref": "#/$defs/root"}, "next": {"$ref": "#"}},
        "required": ["name"],
        "additionalProperties": False,
        "$defs": {"root": {"type": "string", "maxLength": 4}},
    }
    check = validator(answer_or_call_schema(answer, [WEATHER], False))
    assert check.is_valid({"name": "ok", "next": {"name": "fine"}})
    assert not check.is_valid({"name": {"name": "x"}})  # "root" is the string, not itself
    assert not check.is_valid({"name": "too long"})


def test_calls_in_tool_call_blocks_are_constrained_once_opened() -> None:
    thinking = FreeSpan("<think>", "</think>")
    blocks = call_blocks(CHATML_TEMPLATE, [WEATHER, CLOCK], parallel=True, reasoning=thinking)
    assert blocks is not None
    assert (blocks.opener, blocks.closer) == ("<tool_call>", "</tool_call>")
    assert blocks.several and blocks.reasoning == thinking
    # each block holds one call of a declared tool, which the parser reads back
    check = validator(blocks.call_schema)
    assert check.is_valid(PARIS) and check.is_valid(TICK)
    assert not check.is_valid([PARIS]) and not check.is_valid(SAPLING)
    assert not check.is_valid({"name": "get_weather", "arguments": {"unit": "C"}})
    text = "".join(f"<tool_call>\n{json.dumps(call)}\n</tool_call>" for call in (PARIS, TICK))
    parser = OutputParser(parse_tools=True, think=None)
    events = parser.feed("Let me see. " + text) + parser.finish()
    calls = [(e.call.name, e.call.arguments) for e in events if isinstance(e, ToolCallEvent)]
    assert calls == [("get_weather", PARIS["arguments"]), ("now", {})]
    single = call_blocks(CHATML_TEMPLATE, [WEATHER], parallel=False, reasoning=None)
    assert single is not None and not single.several


def test_no_call_blocks_for_other_conventions_or_unusable_parameters() -> None:
    mistral = "{% for m in messages %}[INST]{{ m.content }}[/INST]{% endfor %}[TOOL_CALLS]"
    assert call_blocks(mistral, [WEATHER], parallel=True, reasoning=None) is None
    # Qwen3-Coder writes XML in its blocks: a JSON grammar would force a shape it never saw
    coder = "{{- '<tool_call>\\n<function=' + call.name + '>\\n' }}"
    assert call_blocks(coder, [WEATHER], parallel=True, reasoning=None) is None
    # parameters no schema constrains leave the calls as the model writes them (before,
    # such tools were read unconstrained too: no request fails for them now)
    odd = ToolSpec(name="odd", parameters={"type": "string"})
    assert call_blocks(CHATML_TEMPLATE, [odd], parallel=True, reasoning=None) is None

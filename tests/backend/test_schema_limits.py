"""How many repetitions a JSON schema may ask of its grammar: windows up to 1,000, and
1,000,000 copies in all; and how deep its converted grammar may nest."""

from __future__ import annotations

from typing import Any

import pytest

from power_backend_llamacpp.output_grammars import grammar_for
from power_backend_llamacpp.schema_limits import (
    MAX_GRAMMAR_NESTING,
    MAX_REPEATS,
    check_grammar_nesting,
    check_repetitions,
)
from power_core.errors import InvalidRequest


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "maxLength": 1000},
        {"type": "string", "minLength": 5000, "maxLength": 6000},
        {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 1000},
        {"type": "string", "pattern": r"^c{0,1000}$"},
        {"type": "string", "pattern": r"^\{0,99999\}c{3,}$"},  # escaped braces are text
        {"type": "object", "properties": {"pattern": {"type": "string"}}},  # a property name
        {"type": "string", "minLength": "many"},  # not a count: the converter judges it
        {"type": "string", "maxLength": 3.0},
        # values that are data, not schemas, ask the grammar for nothing
        {"type": "object", "default": {"maxLength": 5000}, "examples": [{"pattern": "a{0,2000}"}]},
        # a pydantic model of 101 fields of max_length=1000
        {
            "type": "object",
            "properties": {f"f{i}": {"type": "string", "maxLength": 1000} for i in range(101)},
        },
    ],
)
def test_schemas_within_the_limits_pass(schema: dict[str, Any]) -> None:
    check_repetitions(schema)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "string", "maxLength": 1001}, "0 to 1001 repetitions"),
        ({"type": "string", "minLength": 10, "maxLength": 30000}, "at most 1000 between"),
        ({"type": "string", "pattern": "^c{0,30000}$"}, r"pattern \{0,30000\}"),
        ({"type": "string", "pattern": "^c{0,99999999999999999999}$"}, "at most 1000 between"),
        ({"type": "array", "items": {}, "maxItems": 1e30}, "at most 1000 between"),
        ({"type": "string", "minLength": 1_000_000_000}, "more than 1000000 repetitions"),
        ({"type": "string", "pattern": "^c{1000001}$"}, "more than 1000000 repetitions"),
        (
            {"anyOf": [{"type": "string", "minLength": 600_000}] * 2},
            "more than 1000000 repetitions in all",
        ),
        # the converter reads these braces as {0,30000} too (each killed the process)
        ({"type": "string", "pattern": "^c{,30000}$"}, "at most 1000 between"),
        ({"type": "string", "pattern": "^c{0, 30000}$"}, "at most 1000 between"),
        ({"type": "string", "pattern": "^c{0,30_000}$"}, "at most 1000 between"),
        ({"type": "string", "pattern": "^c{0,+30000}$"}, "at most 1000 between"),
        ({"type": "string", "pattern": r"^\\{0,30000}$"}, "at most 1000 between"),
        ({"type": "string", "pattern": "^c{1_000_000_000}$"}, "more than 1000000"),
    ],
)
def test_schemas_beyond_the_limits_are_refused(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as caught:
        check_repetitions(schema)
    assert caught.value.param == "json_schema"


def test_the_budget_counts_every_field() -> None:
    fields = {
        f"f{i}": {"type": "string", "minLength": 10_000} for i in range(MAX_REPEATS // 10_000)
    }
    check_repetitions({"type": "object", "properties": fields})
    fields["one_more"] = {"type": "string", "minLength": 1}
    with pytest.raises(InvalidRequest):
        check_repetitions({"type": "object", "properties": fields})


def test_a_grammar_nested_deeper_than_llama_cpp_parses_is_refused() -> None:
    shallow = "root ::= " + "(" * MAX_GRAMMAR_NESTING + '"a"' + ")?" * MAX_GRAMMAR_NESTING
    check_grammar_nesting(shallow)
    with pytest.raises(InvalidRequest, match="nests 1065 levels deep"):
        check_grammar_nesting("root ::= (" + shallow[9:] + ")")
    # parentheses in literals and character classes are text
    check_grammar_nesting('root ::= "' + "(" * 5000 + '" [(\\]' + "(" * 10 + "]")


def test_the_converted_grammar_is_checked_whatever_asked_for_the_nesting() -> None:
    assert grammar_for(False, {"type": "string", "maxLength": 1000})
    with pytest.raises(InvalidRequest):
        grammar_for(False, {"type": "string", "pattern": "^c{0,30_000}$"})

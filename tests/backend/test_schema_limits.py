"""How many repetitions a JSON schema may ask of its grammar: windows up to 1,000, and
100,000 copies in all."""

from __future__ import annotations

from typing import Any

import pytest

from power_backend_llamacpp.schema_limits import MAX_REPEATS, check_repetitions
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
        ({"type": "string", "minLength": 1_000_000_000}, "more than 100000 repetitions"),
        ({"type": "string", "pattern": "^c{100001}$"}, "more than 100000 repetitions"),
        (
            {"anyOf": [{"type": "string", "minLength": 60_000}] * 2},
            "more than 100000 repetitions in all",
        ),
    ],
)
def test_schemas_beyond_the_limits_are_refused(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as caught:
        check_repetitions(schema)
    assert caught.value.param == "json_schema"


def test_the_budget_counts_every_field() -> None:
    fields = {f"f{i}": {"type": "string", "minLength": 1000} for i in range(MAX_REPEATS // 1000)}
    check_repetitions({"type": "object", "properties": fields})
    fields["one_more"] = {"type": "string", "minLength": 1}
    with pytest.raises(InvalidRequest):
        check_repetitions({"type": "object", "properties": fields})

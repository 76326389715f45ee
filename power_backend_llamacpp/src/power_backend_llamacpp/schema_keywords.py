"""The JSON types of a schema's keywords, checked before the converter reads them.

llama-cpp-python's converter trusts every keyword's type: ``"properties": 5`` or
``"anyOf": 3`` failed inside it with Python's own words (``'int' object has no attribute
'items'``), which told the client nothing about its schema. :func:`check_keyword_types`
names the keyword and where it is instead. Only keywords the converter reads are checked;
the walk follows the schema's structure, so a property that happens to be called
``enum`` or ``required`` is a property, not a keyword.
"""

from __future__ import annotations

from typing import Any

from power_core.errors import InvalidRequest
from power_core.json_kinds import json_kind

#: keywords whose value maps names to schemas
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
#: keywords whose value is an array of schemas
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
#: keywords whose value is one schema
_SCHEMA_ONE = (
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "additionalItems",
    "unevaluatedProperties",
    "unevaluatedItems",
)
#: keywords whose value is a count of characters or items
COUNT_KEYWORDS = ("minLength", "maxLength", "minItems", "maxItems")
#: keywords whose value is text
_TEXTS = ("$ref", "pattern", "format")


def check_keyword_types(schema: Any) -> None:
    """Raise :class:`InvalidRequest` naming the first keyword of ``schema`` whose value
    has a JSON type the keyword cannot have (``null`` counts as absent)."""
    pending: list[tuple[Any, str]] = [(schema, "#")]
    while pending:
        node, where = pending.pop()
        if not isinstance(node, dict):
            continue  # true, false, or a mistake the converter's visit() names itself
        for key in _SCHEMA_MAPS:
            value = _present(node, key, where, dict, "an object")
            if value is not None:
                pending.extend((item, f"{where}/{key}/{name}") for name, item in value.items())
        for key in _SCHEMA_LISTS:
            value = _present(node, key, where, list, "an array")
            if value is not None:
                pending.extend((item, f"{where}/{key}/{n}") for n, item in enumerate(value))
        for key in _SCHEMA_ONE:
            pending.append((node.get(key), f"{where}/{key}"))
        items = node.get("items")
        if isinstance(items, list):
            pending.extend((item, f"{where}/items/{n}") for n, item in enumerate(items))
        else:
            pending.append((items, f"{where}/items"))
        _present(node, "enum", where, list, "an array")
        required = _present(node, "required", where, list, "an array of property names")
        for name in required or []:
            if not isinstance(name, str):
                raise _wrong(
                    where, "required", "an array of property names", name, "an array holding "
                )
        for key in COUNT_KEYWORDS:
            count = node.get(key)
            if count is not None and (
                isinstance(count, bool)
                or not isinstance(count, int | float)
                or not float(count).is_integer()
                or count < 0
            ):
                raise _wrong(where, key, "a non-negative whole number", count)
        for key in _TEXTS:
            _present(node, key, where, str, "a string")
        kind = node.get("type")
        expected = "a type name or a non-empty array of type names"
        if (kind is not None and not isinstance(kind, str | list)) or kind == []:
            raise _wrong(where, "type", expected, kind)
        for name in kind if isinstance(kind, list) else []:
            if not isinstance(name, str):
                raise _wrong(where, "type", expected, name, "an array holding ")


def _present(node: dict[str, Any], key: str, where: str, kind: type, expected: str) -> Any:
    """``node[key]`` if it is of ``kind``, ``None`` if absent or null; a 400 otherwise."""
    value = node.get(key)
    if value is not None and not isinstance(value, kind):
        raise _wrong(where, key, expected, value)
    return value


def _wrong(where: str, key: str, expected: str, value: Any, holding: str = "") -> InvalidRequest:
    """The 400 for ``key`` at ``where``, whose value (or an item of it, ``holding``) is
    ``value``."""
    return InvalidRequest(
        f"the JSON schema's '{key}' at {where} must be {expected}, not {holding}{_shown(value)}",
        param="json_schema",
    )


def _shown(value: Any) -> str:
    """What ``value`` is in JSON's words; a fraction shows itself ("the number 1.5"),
    where a count must be whole."""
    return f"the number {value}" if isinstance(value, float) else json_kind(value)
